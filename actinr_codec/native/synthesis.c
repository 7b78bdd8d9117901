/* A frame from its latent grids: each grid brought to full size by separable 4-tap
 * interpolation, a per-pixel synthesis network over the stacked levels, then residual 3x3
 * convolutions over its RGB (the latent-grid representation of issue 30).
 *
 * Float arithmetic, like the codec's other renderers: the pixels may differ in the last
 * bits between machines; nothing that decides probabilities is computed here.
 * Pixels go through the network in blocks of BLOCK, planar, so that the inner loops run
 * over contiguous pixels and vectorise.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256
#define MAX_LEVELS 16
#define MAX_HIDDEN 64
#define TAPS 4

typedef struct {
    int64_t levels, height, width;
    const int64_t *grid_h, *grid_w;      /* each level's grid size */
    const float *const *grids;           /* each level's grid, row-major */
    /* For levels 1.. (level 0 is at full size): per output row (column), TAPS source
     * rows (columns) and their weights. */
    const int32_t *const *row_taps, *const *col_taps;
    const float *const *row_weights, *const *col_weights;
    int64_t layers;                      /* linear layers of the synthesis, the last to RGB */
    const int64_t *widths;               /* layers + 1 widths: levels, ..., 3 */
    const float *const *weights, *const *biases;  /* (out, in) and (out) per layer */
    const float *first_bias;             /* added to the first layer (a frame's bias), or NULL */
    int64_t refine_layers;
    const float *refine_weights, *refine_biases;  /* per layer (3, 3, 3, 3) and (3) */
} synthesis;

/* The levels at full size, planar: stack[level][pixel]. */
static void upsample(const synthesis *s, float *stack, float *rows_buffer) {
    int64_t h = s->height, w = s->width, n = h * w;
    memcpy(stack, s->grids[0], sizeof(float) * n);
    for (int64_t k = 1; k < s->levels; k++) {
        int64_t gh = s->grid_h[k], gw = s->grid_w[k];
        const float *g = s->grids[k];
        const int32_t *ct = s->col_taps[k - 1], *rt = s->row_taps[k - 1];
        const float *cw = s->col_weights[k - 1], *rw = s->row_weights[k - 1];
        /* Columns first: each grid row to full width. */
        for (int64_t r = 0; r < gh; r++)
            for (int64_t x = 0; x < w; x++) {
                float v = 0;
                for (int t = 0; t < TAPS; t++) v += cw[x * TAPS + t] * g[r * gw + ct[x * TAPS + t]];
                rows_buffer[r * w + x] = v;
            }
        float *out = stack + k * n;
        for (int64_t y = 0; y < h; y++) {
            float *o = out + y * w;
            for (int64_t x = 0; x < w; x++) o[x] = 0;
            for (int t = 0; t < TAPS; t++) {
                float c = rw[y * TAPS + t];
                const float *src = rows_buffer + rt[y * TAPS + t] * w;
                for (int64_t x = 0; x < w; x++) o[x] += c * src[x];
            }
        }
    }
}

/* The network over pixels [start, start + count) of the stack, into rgb (planar, 3 x n). */
static void network(const synthesis *s, const float *stack, int64_t n, int64_t start,
                    int64_t count, float *rgb) {
    float a[MAX_HIDDEN * BLOCK], b[MAX_HIDDEN * BLOCK];
    for (int64_t c = 0; c < s->levels; c++)
        memcpy(a + c * BLOCK, stack + c * n + start, sizeof(float) * count);
    float *in = a, *next = b;
    for (int64_t l = 0; l < s->layers; l++) {
        int64_t fan_in = s->widths[l], fan_out = s->widths[l + 1];
        const float *wt = s->weights[l], *bias = s->biases[l];
        for (int64_t o = 0; o < fan_out; o++) {
            float *dst = next + o * BLOCK;
            float b0 = bias[o] + (l == 0 && s->first_bias ? s->first_bias[o] : 0);
            for (int64_t p = 0; p < count; p++) dst[p] = b0;
            for (int64_t i = 0; i < fan_in; i++) {
                float c = wt[o * fan_in + i];
                const float *src = in + i * BLOCK;
                for (int64_t p = 0; p < count; p++) dst[p] += c * src[p];
            }
            if (l < s->layers - 1)
                for (int64_t p = 0; p < count; p++) dst[p] = dst[p] > 0 ? dst[p] : 0;
        }
        float *t = in;
        in = next;
        next = t;
    }
    for (int64_t c = 0; c < 3; c++) memcpy(rgb + c * n + start, in + c * BLOCK, sizeof(float) * count);
}

/* x += conv3x3(x) (edges repeated), then a ReLU unless last; planar 3 x h x w. */
static void refine(const float *weights, const float *biases, int last, int64_t h, int64_t w,
                   float *x, float *tmp) {
    int64_t n = h * w;
    for (int64_t o = 0; o < 3; o++) {
        float *dst = tmp + o * n;
        for (int64_t p = 0; p < n; p++) dst[p] = biases[o];
        for (int64_t i = 0; i < 3; i++)
            for (int64_t dy = -1; dy <= 1; dy++)
                for (int64_t dx = -1; dx <= 1; dx++) {
                    float c = weights[((o * 3 + i) * 3 + dy + 1) * 3 + dx + 1];
                    const float *src = x + i * n;
                    for (int64_t y = 0; y < h; y++) {
                        int64_t sy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                        const float *row = src + sy * w;
                        float *d = dst + y * w;
                        /* The inner columns without bounds checks, the two edges apart. */
                        for (int64_t xx = 1; xx < w - 1; xx++) d[xx] += c * row[xx + dx];
                        d[0] += c * row[dx < 0 ? 0 : (dx > 0 && w > 1 ? 1 : 0)];
                        if (w > 1) d[w - 1] += c * row[dx > 0 ? w - 1 : w - 1 + dx];
                    }
                }
    }
    for (int64_t p = 0; p < 3 * n; p++) {
        float v = x[p] + tmp[p];
        x[p] = last || v > 0 ? v : 0;
    }
}

/* The frame as planar RGB (3 x height x width) into out; returns 0, or 1 if a size is
 * beyond this file's limits or memory runs out. */
int64_t latent_render(const synthesis *s, float *out) {
    if (s->levels < 1 || s->levels > MAX_LEVELS || s->widths[0] != s->levels) return 1;
    for (int64_t l = 1; l <= s->layers; l++)
        if (s->widths[l] < 1 || s->widths[l] > MAX_HIDDEN) return 1;
    if (s->widths[s->layers] != 3) return 1;
    int64_t n = s->height * s->width, tallest = 0;
    for (int64_t k = 1; k < s->levels; k++) tallest = s->grid_h[k] > tallest ? s->grid_h[k] : tallest;
    float *stack = malloc(sizeof(float) * (size_t)(s->levels * n));
    float *scratch = malloc(sizeof(float) * (size_t)((tallest * s->width > 3 * n) ? tallest * s->width : 3 * n));
    if (!stack || !scratch) {
        free(stack);
        free(scratch);
        return 1;
    }
    upsample(s, stack, scratch);
    for (int64_t start = 0; start < n; start += BLOCK)
        network(s, stack, n, start, n - start < BLOCK ? n - start : BLOCK, out);
    for (int64_t l = 0; l < s->refine_layers; l++)
        refine(s->refine_weights + l * 81, s->refine_biases + l * 3, l == s->refine_layers - 1,
               s->height, s->width, out, scratch);
    free(stack);
    free(scratch);
    return 0;
}
