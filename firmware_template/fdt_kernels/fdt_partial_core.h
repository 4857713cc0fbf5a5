/* FDT_PARTIAL: one input-channel slice of an int8 CONV_2D / FULLY_CONNECTED with int32
 * accumulation (fdt-tflm, "fused depthwise tiling" partial sums).
 *
 * Plain C99, no TFLM dependency, so the arithmetic can be tested on the host.  Bit-exact
 * with TFLM's reference int8 ConvPerChannel / FullyConnected when the parts of one op are
 * run in order and the last part requantises.  Parameters come from the op's custom
 * options; the byte layout is documented in docs/fdt_partial.md.
 */
#ifndef FDT_PARTIAL_CORE_H_
#define FDT_PARTIAL_CORE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FDT_PARTIAL_MAGIC 0x50544446u /* "FDTP" */
#define FDT_PARTIAL_VERSION 1
#define FDT_PARTIAL_KIND_CONV 0
#define FDT_PARTIAL_KIND_FC 1
#define FDT_PARTIAL_FLAG_FIRST 1
#define FDT_PARTIAL_FLAG_LAST 2
#define FDT_PARTIAL_HEADER_BYTES 60

typedef struct {
  int32_t kind;  /* FDT_PARTIAL_KIND_* */
  int32_t first; /* no accumulator input */
  int32_t last;  /* add bias, requantise, write int8 */
  int32_t input_offset;  /* -input zero point */
  int32_t output_offset; /* output zero point */
  int32_t act_min, act_max;
  int32_t stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
  int32_t n_channels;         /* entries in multiplier/shift (output channels; 0 unless last) */
  const uint8_t* multiplier;  /* little-endian int32[n_channels], possibly unaligned */
  const uint8_t* shift;       /* little-endian int32[n_channels] */
} FdtPartialParams;

/* Parse custom options; returns 0 on success, a negative code on malformed data. */
int fdt_partial_parse(const uint8_t* buf, size_t len, FdtPartialParams* p);

/* TFLM's MultiplyByQuantizedMultiplier (double-rounding build). */
int32_t fdt_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

/* Conv slice.  input NHWC [batches, in_h, in_w, in_c]; filter OHWI [out_c, k_h, k_w, in_c];
 * acc_in / acc_out int32 NHWC [batches, out_h, out_w, out_c] (acc_in NULL in the first part);
 * bias int32[out_c] or NULL; out int8 written only in the last part (acc_out unused then).
 * acc_out (or out) may alias acc_in: each element is read before it is written.
 * Returns 0, or a negative code if the parameters do not fit the shapes. */
int fdt_partial_conv(const FdtPartialParams* p, const int8_t* input, int batches, int in_h, int in_w,
                     int in_c, const int8_t* filter, int out_c, int k_h, int k_w,
                     const int32_t* acc_in, const int32_t* bias, int out_h, int out_w,
                     int32_t* acc_out, int8_t* out);

/* Dense slice.  input [rows, depth]; filter [units, depth]; acc/out [rows, units]. */
int fdt_partial_fc(const FdtPartialParams* p, const int8_t* input, int rows, int depth,
                   const int8_t* filter, int units, const int32_t* acc_in, const int32_t* bias,
                   int32_t* acc_out, int8_t* out);

#ifdef __cplusplus
}
#endif

#endif /* FDT_PARTIAL_CORE_H_ */
