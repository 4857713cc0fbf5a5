/* Minimal start-up for Cortex-M4F/M7 (used unless FDT_STARTUP=cube).
 *
 * Vector table with the core exceptions only (the template uses no interrupts), a
 * reset handler that enables the FPU, initialises .data/.bss and C++ constructors,
 * and calls main().  The part runs from its reset clock (HSI); that is slow but needs
 * no board-specific clock tree code. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void __libc_init_array(void);
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);

static void fdt_fault_loop(void) {
  for (;;) {
    __asm volatile("bkpt #0");  /* stop here when a debugger is attached */
  }
}

void Default_Handler(void) { fdt_fault_loop(); }

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*fdt_vector_t)(void);

__attribute__((section(".isr_vector"), used))
const fdt_vector_t fdt_vector_table[16] = {
    (fdt_vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};

#define FDT_SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void) {
  /* Full access to CP10/CP11 (the FPU) before any floating-point instruction. */
  FDT_SCB_CPACR |= (0xFu << 20);
  __asm volatile("dsb\n\tisb" ::: "memory");

  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) {
    *dst++ = *src++;
  }
  for (uint32_t *dst = &_sbss; dst < &_ebss;) {
    *dst++ = 0u;
  }
  __libc_init_array();
  (void)main();
  fdt_fault_loop();
}
