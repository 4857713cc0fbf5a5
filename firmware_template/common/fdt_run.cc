// Runs the generated model once with TFLM and prints what the firmware author needs:
// the outputs (to compare against the host) and the arena TFLM actually used.
#include "fdt_run.h"

#include <cstdint>
#include <cstdio>

#include "fdt_app_config.h"  // written by fdt-tflm: model, arena size, op resolver
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#if defined(FDT_TFLM_LOG_CALLBACK)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
static void fdt_log(const char* s) { std::fputs(s, stdout); }
#endif

namespace {

// The arena: exactly the size fdt-tflm computed (see fdt_arena.h for the breakdown).
alignas(16) uint8_t tensor_arena[FDT_APP_ARENA_SIZE];

// A fixed, platform-independent input so that runs can be compared with the host.
void fill_input(TfLiteTensor* t) {
  for (size_t i = 0; i < t->bytes; ++i) {
    t->data.uint8[i] = static_cast<uint8_t>((i * 7u + 3u) & 0xffu);
  }
}

void print_float(float v) {
  const long scaled = static_cast<long>(v * 1000000.0f);
  const long mag = scaled < 0 ? -scaled : scaled;
  std::printf("%s%ld.%06ld", scaled < 0 ? "-" : "", mag / 1000000L, mag % 1000000L);
}

void print_tensor(size_t index, const TfLiteTensor* t) {
  const size_t max_values = 32;
  size_t n = 0;
  std::printf("output %u (%s, %u bytes):", static_cast<unsigned>(index), TfLiteTypeGetName(t->type),
              static_cast<unsigned>(t->bytes));
  switch (t->type) {
    case kTfLiteInt8:
      n = t->bytes;
      for (size_t i = 0; i < n && i < max_values; ++i) std::printf(" %d", t->data.int8[i]);
      break;
    case kTfLiteUInt8:
      n = t->bytes;
      for (size_t i = 0; i < n && i < max_values; ++i) std::printf(" %u", t->data.uint8[i]);
      break;
    case kTfLiteInt16:
      n = t->bytes / sizeof(int16_t);
      for (size_t i = 0; i < n && i < max_values; ++i) std::printf(" %d", t->data.i16[i]);
      break;
    case kTfLiteInt32:
      n = t->bytes / sizeof(int32_t);
      for (size_t i = 0; i < n && i < max_values; ++i) std::printf(" %ld", static_cast<long>(t->data.i32[i]));
      break;
    case kTfLiteFloat32:
      n = t->bytes / sizeof(float);
      for (size_t i = 0; i < n && i < max_values; ++i) {
        std::printf(" ");
        print_float(t->data.f[i]);
      }
      break;
    default:
      std::printf(" (not printed)");
      break;
  }
  if (n > max_values) std::printf(" ...");
  std::printf("\n");
}

}  // namespace

extern "C" int fdt_run(void) {
#if defined(FDT_TFLM_LOG_CALLBACK)
  RegisterDebugLogCallback(fdt_log);
#endif
  const tflite::Model* model = tflite::GetModel(FDT_APP_MODEL);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("fdt: model schema %lu, TFLM expects %d\n", static_cast<unsigned long>(model->version()),
                TFLITE_SCHEMA_VERSION);
    return 1;
  }
  FDT_APP_OP_RESOLVER resolver;
  if (FDT_APP_REGISTER_OPS(resolver) != kTfLiteOk) {
    std::printf("fdt: registering the model's operators failed\n");
    return 2;
  }
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("fdt: AllocateTensors failed with an arena of %u bytes\n",
                static_cast<unsigned>(sizeof(tensor_arena)));
    return 3;
  }
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) fill_input(interpreter.input(i));
  if (interpreter.Invoke() != kTfLiteOk) {
    std::printf("fdt: Invoke failed\n");
    return 4;
  }
  for (size_t i = 0; i < interpreter.outputs_size(); ++i) print_tensor(i, interpreter.output(i));
  std::printf("fdt: arena_used_bytes %u of %u (generated arena size)\n",
              static_cast<unsigned>(interpreter.arena_used_bytes()), static_cast<unsigned>(sizeof(tensor_arena)));
  return 0;
}
