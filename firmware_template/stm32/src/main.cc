// STM32 application: runs the fdt-tflm optimised model once with TFLM and prints its
// outputs and interpreter.arena_used_bytes() (see ../common/fdt_run.cc).
#include "board.h"
#include "fdt_run.h"

int main(void) {
  board_init();
  const int status = fdt_run();
  board_done(status);
  return status;
}
