/* One fitting step of a GOP model: the loss and the gradient of every parameter, per tile.

   Built at run time by actinr_codec/native/kernel.py with WIDTH (the hidden width) fixed,
   so that a layer's rows are a known number of 8-float vectors the compiler keeps in
   registers.
   For every tile, frame and block of points the forward and backward passes run back to
   back while the block's activations are still in L1, which PyTorch's one-operator-at-a-
   time kernels cannot do. The tile's biases come from the bias network (bias_net.c), and
   its gradients go back through it in the same call.

   Pre-activations are scaled by the activation's input factor, so each hidden unit is
   sin(z). Inside, the width is padded to a multiple of 8 with units whose weights are
   zero: they output sin(0) = 0 and learn nothing. */

#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#ifndef WIDTH
#error "compile with -DWIDTH=<hidden width>"
#endif
#define NV ((WIDTH + 7) / 8) /* vectors per row */
#define HP (NV * 8)          /* padded width */
#define BLOCK 32             /* points per block: a block's activations stay in L1 */
#define ROWS 8               /* rows per register tile of a product; BLOCK and 8 are multiples */

/* sin(x) and cos(x) of 8 values: x = k pi + r with |r| <= pi/2 (pi split in three parts,
   the first two short enough that k times them is exact), then sin(x) = (-1)^k sin(r) and
   cos(x) = (-1)^k cos(r) with polynomials fitted on [-pi/2, pi/2] (errors 5e-9 and 5e-8
   there, below float rounding). Accurate for |x| up to about 6000. */
static inline __attribute__((always_inline)) void sincos8(v8 x, v8 *s, v8 *c) {
    /* Adding 1.5 * 2^23 rounds to an integer and leaves it in the low mantissa bits. */
    const v8 magic = splat(12582912.0f);
    v8 t = x * splat(0.318309886183790672f) + magic;
    v8i sign = (v8i)t << 31; /* the parity of k, moved to the sign bit */
    v8 k = t - magic;
    v8 r = x - k * splat(3.140625f);
    r = r - k * splat(9.677410125732422e-4f);
    r = r - k * splat(-8.742277657347586e-8f);
    v8 r2 = r * r;
    v8 sr = r + r * r2 * (splat(-1.6666657097e-1f) + r2 * (splat(8.3330173006e-3f)
                          + r2 * (splat(-1.9806615848e-4f) + r2 * splat(2.6000561895e-6f))));
    v8 cr = splat(1.0f) + r2 * (splat(-4.9999932297e-1f) + r2 * (splat(4.1663989569e-2f)
                                + r2 * (splat(-1.3855928105e-3f) + r2 * splat(2.3194408445e-5f))));
    *s = (v8)((v8i)sr ^ sign);
    *c = (v8)((v8i)cr ^ sign);
}

/* acc[i] += sum_j A[i * si + j * sj] M[j] for j < n: ROWS rows of a product, each a sum
   of n rows of M (HP floats) weighted by scalars of A, which the strides pick: a product's
   rows (si = HP, sj = 1) or a weight gradient's columns (si = 1, sj = HP). */
static inline __attribute__((always_inline)) void
accumulate_rows(const float *restrict A, int si, int sj, const v8 *restrict M, int n,
                v8 acc[ROWS][NV]) {
    for (int j = 0; j < n; j++) {
        v8 m[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) m[v] = M[j * NV + v];
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++) {
            v8 a = splat(A[i * si + j * sj]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] += a * m[v];
        }
    }
}

/* The functions below are kept out of line (noinline): inlined into run_block, where the
   compiler put them, the kernel ran 7 % slower (measured; register pressure). */

/* A hidden layer forward: S[r] = sin(bias + A[r] W) and, with keep_cos (a constant
   wherever it is inlined, so the compiler drops the cosine's polynomial without it),
   C[r] = its cosine for the backward pass. rows: a multiple of ROWS. */
static inline __attribute__((always_inline)) void
hidden_layer(const float *restrict A, const v8 *restrict W, const v8 *restrict bias,
             v8 *restrict S, v8 *restrict C, int rows, int keep_cos) {
    for (int r = 0; r < rows; r += ROWS) {
        v8 acc[ROWS][NV];
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = bias[v];
        accumulate_rows(A + r * HP, HP, 1, W, HP, acc);
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) {
                v8 c;
                sincos8(acc[i][v], &S[(r + i) * NV + v], &c);
                if (keep_cos) C[(r + i) * NV + v] = c;
            }
    }
}

static __attribute__((noinline)) void hidden_forward(const float *restrict A, const v8 *restrict W, const v8 *restrict bias,
                           v8 *restrict S, v8 *restrict C, int rows) {
    hidden_layer(A, W, bias, S, C, rows, 1);
}

static __attribute__((noinline)) void hidden_sines(const float *restrict A, const v8 *restrict W,
                                                   const v8 *restrict bias, v8 *restrict S, int rows) {
    hidden_layer(A, W, bias, S, NULL, rows, 0);
}

/* A hidden layer backward, to the layer below: D[r] = (G[r] W^T) * C[r], the gradient of
   that layer's pre-activation, given WT = W^T and C its cosines; gbias += sum_r D[r]. */
static __attribute__((noinline)) void hidden_backward(const float *restrict G, const v8 *restrict WT, const v8 *restrict C,
                            v8 *restrict D, v8 *restrict gbias, int rows) {
    v8 sums[NV] = {0};
    for (int r = 0; r < rows; r += ROWS) {
        v8 acc[ROWS][NV] = {0};
        accumulate_rows(G + r * HP, HP, 1, WT, HP, acc);
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) {
                v8 d = acc[i][v] * C[(r + i) * NV + v];
                D[(r + i) * NV + v] = d;
                sums[v] += d;
            }
    }
    for (int v = 0; v < NV; v++) gbias[v] += sums[v];
}

/* G[i] += sum_r A[r][i] D[r] over `rows` rows; G is (HP, HP), A and D (rows, HP). */
static __attribute__((noinline)) void weight_grad(const float *restrict A, const v8 *restrict D, v8 *restrict G, int rows) {
    for (int i0 = 0; i0 < HP; i0 += ROWS) {
        v8 acc[ROWS][NV];
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = G[(i0 + i) * NV + v];
        accumulate_rows(A + i0, 1, HP, D, rows, acc);
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) G[(i0 + i) * NV + v] = acc[i][v];
    }
}

/* Out[r] = bias + sum_k A[r][k] Wo[k]: the 3-wide output layer, one vector per row, for
   2 * ROWS rows at a time so that the sums are independent chains. */
static __attribute__((noinline)) void output_layer(const float *restrict A, const v8 *restrict Wo, v8 bias,
                         v8 *restrict Out, int rows) {
    for (int r = 0; r < rows; r += 2 * ROWS) {
        const int n = rows - r < 2 * ROWS ? ROWS : 2 * ROWS;
        v8 acc[2 * ROWS];
#pragma GCC unroll 8
        for (int i = 0; i < 2 * ROWS; i++) acc[i] = bias;
        for (int k = 0; k < HP; k++) {
            v8 w = Wo[k];
#pragma GCC unroll 8
            for (int i = 0; i < 2 * ROWS; i++)
                if (i < n) acc[i] += splat(A[(r + i) * HP + k]) * w;
        }
        for (int i = 0; i < n; i++) Out[r + i] = acc[i];
    }
}

/* G[k] += sum_r A[r][k] D[r]: the output layer's weight gradient, 8 rows of G at a time. */
static __attribute__((noinline)) void output_grad(const float *restrict A, const v8 *restrict D, v8 *restrict G, int rows) {
    for (int k0 = 0; k0 < HP; k0 += 8) {
        v8 acc[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) acc[k] = G[k0 + k];
        for (int r = 0; r < rows; r++) {
            v8 d = D[r];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) acc[k] += splat(A[r * HP + k0 + k]) * d;
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) G[k0 + k] = acc[k];
    }
}

/* A tile's parameters padded to HP, and its gradient accumulators. */
struct padded {
    v8 w0[2 * NV];                            /* first layer (2, HP) */
    v8 w[MAX_DEPTH][HP * NV];                 /* hidden layers (HP, HP) */
    v8 wt[MAX_DEPTH][HP * NV];                /* the same, transposed */
    v8 wo[HP];                                /* output layer (HP, 8): columns 0..2 used */
    v8 wot[3 * NV];                           /* output layer transposed (3, HP) */
    v8 gw0[2 * NV], gw[MAX_DEPTH][HP * NV], gwo[HP];
};

/* Block activations: sin and cos of every hidden layer, and scratch for the gradients. */
struct block {
    float xy[BLOCK * 2];
    v8 s[MAX_DEPTH][BLOCK * NV], c[MAX_DEPTH][BLOCK * NV];
    v8 g[2][BLOCK * NV], out[BLOCK], go[BLOCK];
};

/* Copies a tile's weights, the hidden ones times the activation's input scale. */
static void pad_tile(struct padded *p, int depth, const float *const *W, float scale) {
    const int out = depth;
    /* only the layers in use: the struct is sized for the deepest model */
    memset(p->w0, 0, sizeof(p->w0));
    memset(p->gw0, 0, sizeof(p->gw0));
    memset(p->wo, 0, sizeof(p->wo));
    memset(p->wot, 0, sizeof(p->wot));
    memset(p->gwo, 0, sizeof(p->gwo));
    for (int l = 1; l < depth; l++) {
        memset(p->w[l], 0, sizeof(p->w[l]));
        memset(p->wt[l], 0, sizeof(p->wt[l]));
        memset(p->gw[l], 0, sizeof(p->gw[l]));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < WIDTH; j++) ((float *)p->w0)[i * HP + j] = scale * W[0][i * WIDTH + j];
    for (int l = 1; l < depth; l++)
        for (int i = 0; i < WIDTH; i++)
            for (int j = 0; j < WIDTH; j++) {
                ((float *)p->w[l])[i * HP + j] = scale * W[l][i * WIDTH + j];
                ((float *)p->wt[l])[j * HP + i] = scale * W[l][i * WIDTH + j];
            }
    for (int i = 0; i < WIDTH; i++)
        for (int k = 0; k < 3; k++) {
            ((float *)p->wo)[i * 8 + k] = W[out][i * 3 + k];
            ((float *)p->wot)[k * HP + i] = W[out][i * 3 + k];
        }
}

/* Writes the gradients of the tile's unscaled weights. */
static void unpad_grads(const struct padded *p, int depth, float *const *gW, float scale) {
    const int out = depth;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < WIDTH; j++) gW[0][i * WIDTH + j] = scale * ((const float *)p->gw0)[i * HP + j];
    for (int l = 1; l < depth; l++)
        for (int i = 0; i < WIDTH; i++)
            for (int j = 0; j < WIDTH; j++)
                gW[l][i * WIDTH + j] = scale * ((const float *)p->gw[l])[i * HP + j];
    for (int i = 0; i < WIDTH; i++)
        for (int k = 0; k < 3; k++) gW[out][i * 3 + k] = ((const float *)p->gwo)[i * 8 + k];
}

/* The forward pass of one block of `rows` points (xy, tile-local y and x) of a frame
   whose padded biases bias[l] holds, into b: every hidden layer's sines (and with
   keep_cos their cosines), and the outputs. The block is padded to a multiple of ROWS
   with points at the origin; returns that padded count. */
static inline __attribute__((always_inline)) int
forward(const struct padded *p, struct block *b, int depth, int rows, const float *xy,
        const v8 (*bias)[NV], int keep_cos) {
    const int padded = (rows + ROWS - 1) / ROWS * ROWS;
    memcpy(b->xy, xy, sizeof(float) * 2 * rows);
    memset(b->xy + 2 * rows, 0, sizeof(float) * 2 * (padded - rows));
    for (int r = 0; r < padded; r++) {
        v8 x = splat(b->xy[2 * r]), y = splat(b->xy[2 * r + 1]);
        for (int v = 0; v < NV; v++) {
            v8 c;
            sincos8(bias[0][v] + x * p->w0[v] + y * p->w0[NV + v], &b->s[0][r * NV + v], &c);
            if (keep_cos) b->c[0][r * NV + v] = c;
        }
    }
    for (int l = 1; l < depth; l++) {
        if (keep_cos)
            hidden_forward((const float *)b->s[l - 1], p->w[l], bias[l], b->s[l], b->c[l], padded);
        else
            hidden_sines((const float *)b->s[l - 1], p->w[l], bias[l], b->s[l], padded);
    }
    output_layer((const float *)b->s[depth - 1], p->wo, bias[depth][0], b->out, padded);
    return padded;
}

/* The forward and backward pass of one block of `rows` points of frame f. bias[l] holds
   frame f's padded biases, gb[l] their gradient accumulators. The block is padded to a
   multiple of ROWS with points at the origin whose error gradient is zero, so they add
   nothing to any gradient. pixel[r] is the frame pixel of point r, and frame f is column f
   of the PF frames each pixel holds. Returns the block's weighted squared error. */
static __attribute__((noinline)) double run_block(struct padded *p, struct block *b, int depth, int rows, int64_t PF,
                        const float *xy, const int64_t *pixel, const float *pixels,
                        const float *pw, int64_t f, const v8 (*bias)[NV], v8 (*gb)[NV], float scale) {
    const int out = depth, padded = forward(p, b, depth, rows, xy, bias, 1);
    const float *last = (const float *)b->s[depth - 1];
    v8 squares = splat(0.0f), gsum = splat(0.0f);
    for (int r = 0; r < rows; r++) {
        const float *y = pixels + (pixel[r] * PF + f) * 3;
        /* lanes 3..7 of an output row are padding and hold zeros */
        v8 diff = b->out[r] - (v8){y[0], y[1], y[2], 0, 0, 0, 0, 0};
        v8 wd = pw ? splat(pw[pixel[r] * PF + f]) * diff : diff;
        squares += wd * diff;
        v8 g = splat(scale) * wd;
        b->go[r] = g;
        gsum += g;
    }
    for (int r = rows; r < padded; r++) b->go[r] = splat(0.0f);
    double total = (double)squares[0] + squares[1] + squares[2];
    /* backward */
    gb[out][0] += gsum;
    output_grad(last, b->go, p->gwo, padded);
    v8 *gz = b->g[0], *next = b->g[1];
    {
        const v8 *c = b->c[depth - 1];
        v8 sums[NV] = {0};
        for (int r = 0; r < padded; r++) {
            v8 g = b->go[r];
            for (int v = 0; v < NV; v++) {
                v8 d = (g[0] * p->wot[v] + g[1] * p->wot[NV + v] + g[2] * p->wot[2 * NV + v])
                       * c[r * NV + v];
                gz[r * NV + v] = d;
                sums[v] += d;
            }
        }
        for (int v = 0; v < NV; v++) gb[depth - 1][v] += sums[v];
    }
    for (int l = depth - 1; l > 0; l--) {
        weight_grad((const float *)b->s[l - 1], gz, p->gw[l], padded);
        hidden_backward((const float *)gz, p->wt[l], b->c[l - 1], next, gb[l - 1], padded);
        v8 *swap = gz;
        gz = next;
        next = swap;
    }
    v8 gx[NV] = {0}, gy[NV] = {0};
    for (int r = 0; r < padded; r++) {
        v8 x = splat(b->xy[2 * r]), y = splat(b->xy[2 * r + 1]);
        for (int v = 0; v < NV; v++) {
            gx[v] += x * gz[r * NV + v];
            gy[v] += y * gz[r * NV + v];
        }
    }
    for (int v = 0; v < NV; v++) {
        p->gw0[v] += gx[v];
        p->gw0[NV + v] += gy[v];
    }
    return total;
}

/* Tile t's drawn points, as Sampler.points finds them: tile-local coordinates (P, 2)
   and the index of each point's pixel in the frame. */
static void draw_points(const struct step_args *a, int64_t t, float *xy, int64_t *pixel) {
    const int64_t *box = a->boxes + 4 * t;
    const float rows = (float)box[1], cols = (float)box[3];
    for (int64_t k = 0; k < a->points; k++) {
        int64_t iy = (int64_t)(a->uniform_y[t * a->points + k] * rows);
        int64_t ix = (int64_t)(a->uniform_x[t * a->points + k] * cols);
        iy = iy < box[1] - 1 ? iy : box[1] - 1;
        ix = ix < box[3] - 1 ? ix : box[3] - 1;
        xy[2 * k] = a->row_coords[t * a->row_stride + iy];
        xy[2 * k + 1] = a->col_coords[t * a->col_stride + ix];
        pixel[k] = (box[0] + iy) * a->frame_width + box[2] + ix;
    }
}

/* One tile of a step: its loss and gradients into a, its bias network gradients into the
   scratch's accumulators. table, grad_table, xy and pixel are its working arrays. */
static void one_tile(const struct step_args *a, int64_t t, float *scratch, float *table,
                     float *grad_table, float *xy, int64_t *pixel) {
    static __thread struct padded p;
    static __thread struct block b;
    const int64_t F = a->frames, P = a->points, NB = a->n_bias;
    const int depth = (int)a->depth, n_layers = depth + 1, out = depth;
    const float *w[MAX_DEPTH + 1];
    float *gw[MAX_DEPTH + 1];
    for (int l = 0; l < n_layers; l++) {
        int64_t n_in = l == 0 ? 2 : WIDTH, n_out = l == out ? 3 : WIDTH;
        w[l] = a->weights[l] + t * n_in * n_out;
        gw[l] = a->grad_weights[l] + t * n_in * n_out;
    }
    draw_points(a, t, xy, pixel);
    pad_tile(&p, depth, w, a->input_scale);
    bias_forward(a, t, scratch, table);
    double total = 0.0;
    for (int64_t f = 0; f < F; f++) {
        v8 bias[MAX_DEPTH + 1][NV], gb[MAX_DEPTH + 1][NV];
        memset(bias, 0, sizeof(bias));
        memset(gb, 0, sizeof(gb));
        for (int l = 0; l < n_layers; l++)
            memcpy(bias[l], table + f * NB + l * WIDTH, sizeof(float) * (l == out ? 3 : WIDTH));
        for (int64_t p0 = 0; p0 < P; p0 += BLOCK) {
            int rows = (int)(P - p0 < BLOCK ? P - p0 : BLOCK);
            total += run_block(&p, &b, depth, rows, a->pixel_frames, xy + 2 * p0, pixel + p0,
                               a->pixels, a->pixel_weight, a->frame_first + f * a->frame_step,
                               (const v8(*)[NV])bias, gb, a->loss_scale);
        }
        for (int l = 0; l < n_layers; l++)
            memcpy(grad_table + f * NB + l * WIDTH, gb[l], sizeof(float) * (l == out ? 3 : WIDTH));
    }
    bias_backward(a, t, scratch, grad_table);
    unpad_grads(&p, depth, gw, a->input_scale);
    if (a->n_motion) bias_motion_grad(a, t, scratch, grad_table, gw[0]);
    a->loss[t] = total;
}

/* Runs a step's tiles in chunks of `chunk` tiles, taking the next chunk from *next_chunk
   until none is left, so that calls on several threads at once share the work. Writes the
   tiles' loss and gradients into a, and chunk k's bias network gradients to
   shared + k * shared_len: the results do not depend on which call ran which chunk.
   Returns 0, or -1 if out of memory. */
int tile_step(const struct step_args *a, int64_t tiles, int64_t chunk, int64_t *next_chunk,
              float *shared, int64_t shared_len) {
    const int64_t F = a->frames, P = a->points, NB = a->n_bias;
    float *scratch = malloc(sizeof(float) * (bias_scratch_floats(a) + 2 * F * NB + 2 * P));
    int64_t *pixel = malloc(sizeof(int64_t) * P);
    if (!scratch || !pixel) {
        free(scratch);
        free(pixel);
        return -1;
    }
    float *table = scratch + bias_scratch_floats(a), *grad_table = table + F * NB;
    float *xy = grad_table + F * NB;
    bias_prepare(a, scratch);
    for (;;) {
        const int64_t k = __atomic_fetch_add(next_chunk, 1, __ATOMIC_RELAXED), t0 = k * chunk;
        if (t0 >= tiles) break;
        for (int64_t t = t0; t < t0 + chunk && t < tiles; t++)
            one_tile(a, t, scratch, table, grad_table, xy, pixel);
        bias_finish(a, scratch, shared + k * shared_len);
    }
    free(scratch);
    free(pixel);
    return 0;
}

/* Rendering: the forward pass alone. Tiles [0, T) of a model at P points each (coords,
   (T, P, 2) tile-local y, x), for F frames whose per-tile biases come from table (T, F,
   n_bias) as GOPModel.frame_biases gives them, hidden ones pre-scaled. weights holds the
   layers' (T, in, out) arrays. out (T, P, F, 3) receives each output times the point's
   blend weight (blend, (T, P)). */
void tile_render(int64_t depth, int64_t T, int64_t P, int64_t F, int64_t NB, float scale,
                 const float *const *weights, const float *coords, const float *table,
                 const float *blend, float *out) {
    static __thread struct padded p;
    static __thread struct block b;
    for (int64_t t = 0; t < T; t++) {
        const float *w[MAX_DEPTH + 1];
        for (int l = 0; l <= depth; l++) {
            int64_t n_in = l == 0 ? 2 : WIDTH, n_out = l == depth ? 3 : WIDTH;
            w[l] = weights[l] + t * n_in * n_out;
        }
        pad_tile(&p, (int)depth, w, scale);
        for (int64_t f = 0; f < F; f++) {
            v8 bias[MAX_DEPTH + 1][NV];
            memset(bias, 0, sizeof(bias));
            for (int l = 0; l <= depth; l++)
                memcpy(bias[l], table + (t * F + f) * NB + l * WIDTH,
                       sizeof(float) * (l == depth ? 3 : WIDTH));
            for (int64_t p0 = 0; p0 < P; p0 += BLOCK) {
                const int rows = (int)(P - p0 < BLOCK ? P - p0 : BLOCK);
                forward(&p, &b, (int)depth, rows, coords + (t * P + p0) * 2,
                        (const v8(*)[NV])bias, 0);
                for (int r = 0; r < rows; r++) {
                    const float k = blend[t * P + p0 + r];
                    float *o = out + ((t * P + p0 + r) * F + f) * 3;
                    o[0] = k * b.out[r][0];
                    o[1] = k * b.out[r][1];
                    o[2] = k * b.out[r][2];
                }
            }
        }
    }
}

/* What kernel.py compares with step_args as it reads it from kernel.h before it calls
   tile_step: KERNEL_VERSION, MAX_DEPTH, sizeof(struct step_args), the number of fields,
   then each field's offset in kernel.h's declaration order (which the list below follows).
   Writes the first `capacity` of these to out and returns how many there are. */
int64_t kernel_layout(int64_t *out, int64_t capacity) {
#define AT(field) (int64_t)offsetof(struct step_args, field)
    static const int64_t fields[] = {
        AT(frames), AT(points), AT(depth), AT(n_time), AT(n_latent), AT(hidden), AT(n_bias),
        AT(n_motion), AT(input_scale), AT(loss_scale), AT(uniform_y), AT(uniform_x), AT(boxes),
        AT(row_coords), AT(col_coords), AT(row_stride), AT(col_stride), AT(frame_width),
        AT(pixel_frames), AT(frame_first), AT(frame_step),
        AT(pixels), AT(pixel_weight), AT(weights), AT(base), AT(latents), AT(time_features),
        AT(w_in), AT(b_in), AT(w_mid), AT(b_mid), AT(w_out), AT(b_out), AT(base_scale),
        AT(offset_scale), AT(grad_weights), AT(grad_base), AT(grad_latents), AT(loss),
    };
#undef AT
    const int64_t n_fields = sizeof(fields) / sizeof(fields[0]);
    const int64_t head[] = {KERNEL_VERSION, MAX_DEPTH, sizeof(struct step_args), n_fields};
    const int64_t n_head = sizeof(head) / sizeof(head[0]);
    for (int64_t i = 0; i < n_head + n_fields && i < capacity; i++)
        out[i] = i < n_head ? head[i] : fields[i - n_head];
    return n_head + n_fields;
}
