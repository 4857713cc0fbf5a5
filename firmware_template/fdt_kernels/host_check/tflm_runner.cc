// Host check (not firmware): TFLM reference kernels + the bundled FDT_PARTIAL kernel.
// Usage: tflm_runner model.tflite inputs.bin outputs.bin  (inputs: samples of input 0, back to back;
// outputs: output 0 of each sample).  Prints TFLM's arena report (head/tail/total).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fdt_partial.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"

static std::vector<unsigned char> ReadFile(const char* path) {
  std::vector<unsigned char> d;
  FILE* f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(3); }
  unsigned char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) d.insert(d.end(), buf, buf + n);
  fclose(f);
  return d;
}

int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: runner model.tflite inputs.bin outputs.bin\n"); return 2; }
  tflite::InitializeTarget();
  std::vector<unsigned char> model_data = ReadFile(argv[1]);
  std::vector<unsigned char> in = ReadFile(argv[2]);
  const tflite::Model* model = tflite::GetModel(model_data.data());
  static tflite::MicroMutableOpResolver<8> resolver;
  resolver.AddReshape();
  resolver.AddDepthwiseConv2D();
  resolver.AddFullyConnected();
  resolver.AddSoftmax();
  resolver.AddConv2D();
  resolver.AddAveragePool2D();
  static TFLMRegistration fdt_partial = tflite::Register_FDT_PARTIAL();
  resolver.AddCustom(tflite::kFdtPartialCustomCode, &fdt_partial);
  static std::vector<uint8_t> arena(1 << 22);
  tflite::RecordingMicroInterpreter interpreter(model, resolver, arena.data(), arena.size());
  if (interpreter.AllocateTensors() != kTfLiteOk) { fprintf(stderr, "AllocateTensors failed\n"); return 4; }
  TfLiteTensor* input = interpreter.input(0);
  size_t per = input->bytes;
  if (in.size() % per) { fprintf(stderr, "input size mismatch\n"); return 5; }
  FILE* out = fopen(argv[3], "wb");
  for (size_t s = 0; s < in.size() / per; ++s) {
    memcpy(input->data.raw, in.data() + s * per, per);
    if (interpreter.Invoke() != kTfLiteOk) { fprintf(stderr, "Invoke failed\n"); return 6; }
    TfLiteTensor* o = interpreter.output(0);
    fwrite(o->data.raw, 1, o->bytes, out);
  }
  fclose(out);
  interpreter.GetMicroAllocator().PrintAllocations();
  return 0;
}
