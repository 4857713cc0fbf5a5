// Runs the generated model once with TFLM; shared by the stm32 and nrf templates.
#ifndef FDT_RUN_H_
#define FDT_RUN_H_

#ifdef __cplusplus
extern "C" {
#endif

// Builds the interpreter on the generated arena, runs one inference on a fixed input
// pattern and prints the outputs and interpreter.arena_used_bytes() with printf.
// Returns 0 on success.
int fdt_run(void);

#ifdef __cplusplus
}
#endif

#endif  // FDT_RUN_H_
