/* Thin TFLM wrapper around fdt_partial_core.c; see fdt_partial.h and docs/fdt_partial.md. */
#include "fdt_partial.h"

#include "fdt_partial_core.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_utils.h"

namespace tflite {
namespace {

constexpr int kInput = 0;
constexpr int kFilter = 1;
constexpr int kAccIn = 2;
constexpr int kBias = 3;
constexpr int kOutput = 0;

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  // The options live in the flatbuffer (persistent), so the parsed struct may point into them.
  void* raw = context->AllocatePersistentBuffer(context, sizeof(FdtPartialParams));
  if (raw == nullptr) return nullptr;
  auto* params = static_cast<FdtPartialParams*>(raw);
  if (fdt_partial_parse(reinterpret_cast<const uint8_t*>(buffer), length, params) != 0) {
    MicroPrintf("FDT_PARTIAL: malformed custom options (%d bytes)", static_cast<int>(length));
    params->kind = -1;
  }
  return raw;
}

const TfLiteEvalTensor* OptionalInput(TfLiteContext* context, TfLiteNode* node, int index) {
  if (node->inputs->size <= index || node->inputs->data[index] < 0) return nullptr;
  return micro::GetEvalInput(context, node, index);
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const auto* p = static_cast<const FdtPartialParams*>(node->user_data);
  TF_LITE_ENSURE(context, p->kind == FDT_PARTIAL_KIND_CONV || p->kind == FDT_PARTIAL_KIND_FC);
  TF_LITE_ENSURE(context, node->inputs->size >= 2 && node->inputs->size <= 4);
  TF_LITE_ENSURE_EQ(context, node->outputs->size, 1);
  MicroContext* micro_context = GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kInput);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kOutput);
  TF_LITE_ENSURE(context, input != nullptr && output != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, input->type, kTfLiteInt8);
  TF_LITE_ENSURE_TYPES_EQ(context, output->type, p->last ? kTfLiteInt8 : kTfLiteInt32);
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(output);
  return kTfLiteOk;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const auto* p = static_cast<const FdtPartialParams*>(node->user_data);
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kInput);
  const TfLiteEvalTensor* filter = micro::GetEvalInput(context, node, kFilter);
  const TfLiteEvalTensor* acc_in = OptionalInput(context, node, kAccIn);
  const TfLiteEvalTensor* bias = OptionalInput(context, node, kBias);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kOutput);
  const int32_t* acc_data = acc_in ? micro::GetTensorData<int32_t>(acc_in) : nullptr;
  const int32_t* bias_data = bias ? micro::GetTensorData<int32_t>(bias) : nullptr;
  int32_t* acc_out = p->last ? nullptr : micro::GetTensorData<int32_t>(output);
  int8_t* out = p->last ? micro::GetTensorData<int8_t>(output) : nullptr;
  const TfLiteIntArray* od = output->dims;
  const TfLiteIntArray* fd = filter->dims;
  int status;
  if (p->kind == FDT_PARTIAL_KIND_CONV) {
    const TfLiteIntArray* id = input->dims;
    TF_LITE_ENSURE(context, id->size == 4 && fd->size == 4 && od->size == 4);
    TF_LITE_ENSURE_EQ(context, fd->data[3], id->data[3]);
    TF_LITE_ENSURE_EQ(context, fd->data[0], od->data[3]);
    status = fdt_partial_conv(p, micro::GetTensorData<int8_t>(input), id->data[0], id->data[1],
                              id->data[2], id->data[3], micro::GetTensorData<int8_t>(filter),
                              fd->data[0], fd->data[1], fd->data[2], acc_data, bias_data,
                              od->data[1], od->data[2], acc_out, out);
  } else {
    TF_LITE_ENSURE(context, fd->size == 2);
    const int units = fd->data[0];
    const int depth = fd->data[1];
    int rows = 1;
    for (int i = 0; i + 1 < od->size; ++i) rows *= od->data[i];
    TF_LITE_ENSURE_EQ(context, ElementCount(*input->dims), rows * depth);
    TF_LITE_ENSURE_EQ(context, od->data[od->size - 1], units);
    status = fdt_partial_fc(p, micro::GetTensorData<int8_t>(input), rows, depth,
                            micro::GetTensorData<int8_t>(filter), units, acc_data, bias_data,
                            acc_out, out);
  }
  if (status != 0) {
    MicroPrintf("FDT_PARTIAL: shapes do not match the options (code %d)", status);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_FDT_PARTIAL() { return micro::RegisterOp(Init, Prepare, Eval); }

}  // namespace tflite
