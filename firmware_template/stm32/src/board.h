// Board hooks the template's main.cc calls.  src/board_minimal.c implements them for
// the template's own start-up; with FDT_STARTUP=cube, implement them in your
// STM32Cube project (see src/board_cube_example.c).
#ifndef FDT_BOARD_H_
#define FDT_BOARD_H_

#ifdef __cplusplus
extern "C" {
#endif

// Clocks, console (UART / semihosting / ITM); called first thing in main().
void board_init(void);

// Called when the run is over (success or not): park the CPU / signal the host.
void board_done(int status);

#ifdef __cplusplus
}
#endif

#endif  // FDT_BOARD_H_
