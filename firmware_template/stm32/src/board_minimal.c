/* Board hooks for the template's own start-up: console over semihosting or ITM/SWO.
 *
 * FDT_STDIO_SEMIHOSTING (default): printf goes to the debugger (OpenOCD
 *   `arm semihosting enable`, pyOCD, STM32CubeIDE).  Without a debugger attached a
 *   semihosting call stops the CPU, so use ITM or UART for standalone runs.  The run
 *   ends with a semihosting exit, so QEMU (-semihosting) terminates with the status.
 * FDT_STDIO_ITM: printf goes to ITM stimulus port 0 (SWO pin): view it with
 *   STM32CubeProgrammer's SWV or `openocd ... -c "itm port 0 on"`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "board.h"

#if defined(FDT_STDIO_ITM)
#include <errno.h>
#include <sys/stat.h>

#define FDT_ITM_STIM0 (*(volatile uint32_t *)0xE0000000u)
#define FDT_ITM_TER (*(volatile uint32_t *)0xE0000E00u)
#define FDT_ITM_TCR (*(volatile uint32_t *)0xE0000E80u)
#define FDT_DEMCR (*(volatile uint32_t *)0xE000EDFCu)

static void itm_putc(char c) {
  /* Drop output when no debugger enabled tracing (TRCENA, ITM, port 0). */
  if ((FDT_DEMCR & (1u << 24)) == 0u || (FDT_ITM_TCR & 1u) == 0u || (FDT_ITM_TER & 1u) == 0u) {
    return;
  }
  while (FDT_ITM_STIM0 == 0u) {
  }
  *(volatile uint8_t *)&FDT_ITM_STIM0 = (uint8_t)c;
}

int _write(int fd, const char *buf, int len);
int _write(int fd, const char *buf, int len) {
  (void)fd;
  for (int i = 0; i < len; ++i) {
    itm_putc(buf[i]);
  }
  return len;
}
#else
extern void initialise_monitor_handles(void);
#endif

void board_init(void) {
#if !defined(FDT_STDIO_ITM)
  initialise_monitor_handles();
#endif
  setvbuf(stdout, NULL, _IONBF, 0);
}

void board_done(int status) {
  printf("fdt: done (status %d)\n", status);
#if !defined(FDT_STDIO_ITM)
  /* Semihosting SYS_EXIT: the debugger (or an emulator such as QEMU) ends the session. */
  exit(status);
#endif
  for (;;) {
    __asm volatile("wfi");
  }
}
