/* FDT_PARTIAL core arithmetic: see fdt_partial_core.h and docs/fdt_partial.md. */
#include "fdt_partial_core.h"

static int32_t rd32(const uint8_t* b) {
  return (int32_t)((uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                   ((uint32_t)b[3] << 24));
}

int fdt_partial_parse(const uint8_t* buf, size_t len, FdtPartialParams* p) {
  if (buf == NULL || p == NULL || len < FDT_PARTIAL_HEADER_BYTES) return -1;
  if ((uint32_t)rd32(buf) != FDT_PARTIAL_MAGIC || buf[4] != FDT_PARTIAL_VERSION) return -2;
  p->kind = buf[5];
  if (p->kind != FDT_PARTIAL_KIND_CONV && p->kind != FDT_PARTIAL_KIND_FC) return -3;
  p->first = (buf[6] & FDT_PARTIAL_FLAG_FIRST) != 0;
  p->last = (buf[6] & FDT_PARTIAL_FLAG_LAST) != 0;
  const uint8_t* f = buf + 8;
  p->input_offset = rd32(f + 0);
  p->output_offset = rd32(f + 4);
  p->act_min = rd32(f + 8);
  p->act_max = rd32(f + 12);
  p->stride_h = rd32(f + 16);
  p->stride_w = rd32(f + 20);
  p->dilation_h = rd32(f + 24);
  p->dilation_w = rd32(f + 28);
  p->pad_top = rd32(f + 32);
  p->pad_left = rd32(f + 36);
  p->n_channels = rd32(f + 40);
  if (p->n_channels < 0 || len != (size_t)FDT_PARTIAL_HEADER_BYTES + 8u * (size_t)p->n_channels) return -4;
  if (p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1) return -5;
  p->multiplier = buf + FDT_PARTIAL_HEADER_BYTES;
  p->shift = buf + FDT_PARTIAL_HEADER_BYTES + 4 * p->n_channels;
  return 0;
}

static int32_t srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* truncates toward zero */
}

static int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t fdt_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const int32_t shifted = (int32_t)((uint32_t)x << left); /* wraps like the int32 product in TFLM */
  return rounding_divide_by_pot(srdhm(shifted, multiplier), right);
}

/* Final step of one output element: accumulator -> int8 (last part) or int32. */
static void finish(const FdtPartialParams* p, int32_t acc, int idx, int channel, const int32_t* bias,
                   int32_t* acc_out, int8_t* out) {
  if (!p->last) {
    acc_out[idx] = acc;
    return;
  }
  if (bias != NULL) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[channel]);
  int32_t v = fdt_multiply_by_quantized_multiplier(acc, rd32(p->multiplier + 4 * channel),
                                                   rd32(p->shift + 4 * channel));
  v += p->output_offset;
  if (v < p->act_min) v = p->act_min;
  if (v > p->act_max) v = p->act_max;
  out[idx] = (int8_t)v;
}

int fdt_partial_conv(const FdtPartialParams* p, const int8_t* input, int batches, int in_h, int in_w,
                     int in_c, const int8_t* filter, int out_c, int k_h, int k_w,
                     const int32_t* acc_in, const int32_t* bias, int out_h, int out_w,
                     int32_t* acc_out, int8_t* out) {
  if (p->kind != FDT_PARTIAL_KIND_CONV) return -10;
  if (p->last ? (p->n_channels != out_c || out == NULL) : acc_out == NULL) return -11;
  if (!p->first && acc_in == NULL) return -12;
  for (int b = 0; b < batches; ++b) {
    for (int oy = 0; oy < out_h; ++oy) {
      const int y0 = oy * p->stride_h - p->pad_top;
      for (int ox = 0; ox < out_w; ++ox) {
        const int x0 = ox * p->stride_w - p->pad_left;
        for (int oc = 0; oc < out_c; ++oc) {
          int32_t acc = 0;
          for (int ky = 0; ky < k_h; ++ky) {
            const int iy = y0 + ky * p->dilation_h;
            if (iy < 0 || iy >= in_h) continue;
            for (int kx = 0; kx < k_w; ++kx) {
              const int ix = x0 + kx * p->dilation_w;
              if (ix < 0 || ix >= in_w) continue;
              const int8_t* xi = input + (((size_t)b * in_h + iy) * in_w + ix) * in_c;
              const int8_t* wi = filter + (((size_t)oc * k_h + ky) * k_w + kx) * in_c;
              for (int c = 0; c < in_c; ++c) acc += (int32_t)wi[c] * ((int32_t)xi[c] + p->input_offset);
            }
          }
          const int idx = ((b * out_h + oy) * out_w + ox) * out_c + oc;
          if (!p->first) acc = (int32_t)((uint32_t)acc + (uint32_t)acc_in[idx]); /* read before write */
          finish(p, acc, idx, oc, bias, acc_out, out);
        }
      }
    }
  }
  return 0;
}

int fdt_partial_fc(const FdtPartialParams* p, const int8_t* input, int rows, int depth,
                   const int8_t* filter, int units, const int32_t* acc_in, const int32_t* bias,
                   int32_t* acc_out, int8_t* out) {
  if (p->kind != FDT_PARTIAL_KIND_FC) return -10;
  if (p->last ? (p->n_channels != units || out == NULL) : acc_out == NULL) return -11;
  if (!p->first && acc_in == NULL) return -12;
  for (int r = 0; r < rows; ++r) {
    const int8_t* xr = input + (size_t)r * depth;
    for (int u = 0; u < units; ++u) {
      const int8_t* wu = filter + (size_t)u * depth;
      int32_t acc = 0;
      for (int d = 0; d < depth; ++d) acc += (int32_t)wu[d] * ((int32_t)xr[d] + p->input_offset);
      const int idx = r * units + u;
      if (!p->first) acc = (int32_t)((uint32_t)acc + (uint32_t)acc_in[idx]);
      finish(p, acc, idx, u, bias, acc_out, out);
    }
  }
  return 0;
}
