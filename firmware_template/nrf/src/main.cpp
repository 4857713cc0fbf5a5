// nRF52840 / nRF5340 application: runs the fdt-tflm optimised model once with TFLM and
// prints its outputs and interpreter.arena_used_bytes() (see ../common/fdt_run.cc).
#include <cstdio>

#include "fdt_run.h"

int main(void) {
  std::printf("fdt: running the model\n");
  const int status = fdt_run();
  std::printf("fdt: done (status %d)\n", status);
  return 0;
}
