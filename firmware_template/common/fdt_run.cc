// Runs the generated model once with TFLM and prints what the firmware author needs:
// the outputs (to compare against the host) and the arena TFLM actually used.
//
// Opt-in measurement (off by default; `fdt-tflm device-run` turns it on), compiled only
// into the application, never into TFLM:
//   FDT_ARENA_PROBE       after the normal run and its lines, print `fdt-probe:` lines:
//                         whether the model allocates in FDT_APP_ARENA_SIZE - 32 bytes, the
//                         smallest arena (exact byte, bisection) in which AllocateTensors and
//                         Invoke succeed, and every output byte in hex;
//   FDT_PROBE_ARENA_SIZE  the buffer the probe may use (default 2 x the generated size);
//   FDT_SYSTICK_COUNT     count SysTick ticks around Invoke and around a calibration loop
//                         of known length (under QEMU -icount shift=0 the ratio gives the
//                         executed instructions; see docs/firmware.md, device-run);
//   FDT_PROBE_NO_BISECT   with FDT_ARENA_PROBE: skip the smallest-arena bisection;
//   FDT_OP_PROFILE        with FDT_SYSTICK_COUNT: one more Invoke with a profiler, printing
//                         SysTick ticks per operator (fdt_probe.inc).
//
// FDT_TWO_ARENAS (CMake -DFDT_TWO_ARENAS=ON): the interpreter gets two arenas instead of one,
// MicroAllocator::Create(persistent, FDT_PERSISTENT_ARENA_SIZE, non_persistent,
// FDT_NON_PERSISTENT_ARENA_SIZE) (fdt_arena.h), e.g. to put the persistent tail in another
// RAM; the normal run prints the sum of both in its arena_used_bytes line.  With
// FDT_ARENA_PROBE the probe also checks both sizes, each 32 B short, and bisects the smallest
// of each (`fdt-probe: two_arenas ...` lines, fdt_probe.inc); FDT_PROBE_PERSISTENT_SIZE /
// FDT_PROBE_NON_PERSISTENT_SIZE: the buffers it may use (default 2 x each size + 1 KB).
// Other prefixes than `fdt`: define FDT_APP_PERSISTENT_ARENA_SIZE / _NON_PERSISTENT_.
#include "fdt_run.h"

#include <cstdint>
#include <cstdio>

#include "fdt_app_config.h"  // written by fdt-tflm: model, arena size, op resolver
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#if defined(FDT_TFLM_LOG_CALLBACK)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#if defined(FDT_ARENA_PROBE)
static bool fdt_log_quiet = false;  // the probe's failing tries would print TFLM's errors
static void fdt_log(const char* s) {
  if (!fdt_log_quiet) std::fputs(s, stdout);
}
#else
static void fdt_log(const char* s) { std::fputs(s, stdout); }
#endif
#endif

namespace {

// The arena: exactly the size fdt-tflm computed (see fdt_arena.h for the breakdown).
constexpr size_t kArenaSize = FDT_APP_ARENA_SIZE;
#if defined(FDT_ARENA_PROBE)
#if !defined(FDT_PROBE_ARENA_SIZE)
#define FDT_PROBE_ARENA_SIZE (2 * FDT_APP_ARENA_SIZE)
#endif
// The normal run uses the first kArenaSize bytes; the probe may use the whole buffer.
constexpr size_t kBufferSize = FDT_PROBE_ARENA_SIZE > kArenaSize ? FDT_PROBE_ARENA_SIZE : kArenaSize;
#else
constexpr size_t kBufferSize = kArenaSize;
#endif
#if defined(FDT_TWO_ARENAS)
#if !defined(FDT_APP_PERSISTENT_ARENA_SIZE)
#define FDT_APP_PERSISTENT_ARENA_SIZE FDT_PERSISTENT_ARENA_SIZE
#endif
#if !defined(FDT_APP_NON_PERSISTENT_ARENA_SIZE)
#define FDT_APP_NON_PERSISTENT_ARENA_SIZE FDT_NON_PERSISTENT_ARENA_SIZE
#endif
constexpr size_t kPersistentSize = FDT_APP_PERSISTENT_ARENA_SIZE;
constexpr size_t kNonPersistentSize = FDT_APP_NON_PERSISTENT_ARENA_SIZE;
#if defined(FDT_ARENA_PROBE)
#if !defined(FDT_PROBE_PERSISTENT_SIZE)
#define FDT_PROBE_PERSISTENT_SIZE (2 * FDT_APP_PERSISTENT_ARENA_SIZE + 1024)
#endif
#if !defined(FDT_PROBE_NON_PERSISTENT_SIZE)
#define FDT_PROBE_NON_PERSISTENT_SIZE (2 * FDT_APP_NON_PERSISTENT_ARENA_SIZE + 1024)
#endif
constexpr size_t kPersistentBuffer =
    FDT_PROBE_PERSISTENT_SIZE > kPersistentSize ? FDT_PROBE_PERSISTENT_SIZE : kPersistentSize;
constexpr size_t kNonPersistentBuffer =
    FDT_PROBE_NON_PERSISTENT_SIZE > kNonPersistentSize ? FDT_PROBE_NON_PERSISTENT_SIZE : kNonPersistentSize;
#else
constexpr size_t kPersistentBuffer = kPersistentSize;
constexpr size_t kNonPersistentBuffer = kNonPersistentSize;
#endif
#if defined(FDT_ARENA_PROBE) || defined(FDT_SYSTICK_COUNT)
// The probe's single-arena runs and the two-arena ones never overlap in time (each builds a
// fresh interpreter and is done with it), so they share one buffer: the two arenas side by
// side at its start, 16-byte aligned each.
constexpr size_t kNonPersistentOffset = (kPersistentBuffer + 15u) / 16u * 16u;
constexpr size_t kSharedSize = kNonPersistentOffset + kNonPersistentBuffer > kBufferSize
                                   ? kNonPersistentOffset + kNonPersistentBuffer
                                   : kBufferSize;
alignas(16) uint8_t tensor_arena[kSharedSize];
uint8_t* const persistent_arena = tensor_arena;
uint8_t* const non_persistent_arena = tensor_arena + kNonPersistentOffset;
#else
alignas(16) uint8_t persistent_arena[kPersistentBuffer];
alignas(16) uint8_t non_persistent_arena[kNonPersistentBuffer];
#endif
#else
alignas(16) uint8_t tensor_arena[kBufferSize];
#endif

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

// The normal run on exactly the generated arena: outputs and arena_used_bytes().
int run_once(const tflite::Model* model, FDT_APP_OP_RESOLVER& resolver) {
#if defined(FDT_TWO_ARENAS)
  // The allocator lives in the persistent arena (placement new there), as does everything
  // the interpreter keeps; nothing to free.
  tflite::MicroAllocator* allocator =
      tflite::MicroAllocator::Create(persistent_arena, kPersistentSize, non_persistent_arena, kNonPersistentSize);
  if (allocator == nullptr) {
    std::printf("fdt: MicroAllocator::Create failed with a persistent arena of %u bytes\n",
                static_cast<unsigned>(kPersistentSize));
    return 3;
  }
  tflite::MicroInterpreter interpreter(model, resolver, allocator);
  const size_t arena_total = kPersistentSize + kNonPersistentSize;
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("fdt: AllocateTensors failed with two arenas of %u (persistent) and %u (non-persistent) bytes\n",
                static_cast<unsigned>(kPersistentSize), static_cast<unsigned>(kNonPersistentSize));
    return 3;
  }
#else
  const size_t arena_total = kArenaSize;
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("fdt: AllocateTensors failed with an arena of %u bytes\n", static_cast<unsigned>(kArenaSize));
    return 3;
  }
#endif
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) fill_input(interpreter.input(i));
  if (interpreter.Invoke() != kTfLiteOk) {
    std::printf("fdt: Invoke failed\n");
    return 4;
  }
  for (size_t i = 0; i < interpreter.outputs_size(); ++i) print_tensor(i, interpreter.output(i));
#if defined(FDT_TWO_ARENAS)
  std::printf("fdt: arena_used_bytes %u of %u (two arenas: persistent %u, non-persistent %u)\n",
              static_cast<unsigned>(interpreter.arena_used_bytes()), static_cast<unsigned>(arena_total),
              static_cast<unsigned>(kPersistentSize), static_cast<unsigned>(kNonPersistentSize));
#else
  std::printf("fdt: arena_used_bytes %u of %u (generated arena size)\n",
              static_cast<unsigned>(interpreter.arena_used_bytes()), static_cast<unsigned>(arena_total));
#endif
  return 0;
}

}  // namespace

#if defined(FDT_ARENA_PROBE) || defined(FDT_SYSTICK_COUNT)
#include "fdt_probe.inc"
#endif

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
  const int status = run_once(model, resolver);
#if defined(FDT_ARENA_PROBE) || defined(FDT_SYSTICK_COUNT)
  fdt_probe(model, resolver);
#endif
  return status;
}
