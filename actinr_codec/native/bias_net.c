/* The bias network of GOPModel.frame_biases for one tile, forward and backward.

   x = [time features of frame f, the tile's latent] -> silu(W_in x + b_in) ->
   silu(W_mid h + b_mid) -> offsets W_out h + b_out; the tile's biases are then
   base * base_scale + offsets * offset_scale. With displacement outputs (n_motion of
   them after the n_bias offsets) the displacement d = offsets * offset_scale there, and
   the first layer's biases gain d times the tile's scaled first-layer weights.
   The frames are the rows of every product.
   Rows are padded with zeros to multiples of 32 floats, so that every product runs on
   blocks of four vectors held in registers. */

#include <string.h>

#include "kernel.h"

#define BLOCK_COLS 32

static int64_t pad(int64_t n) { return (n + BLOCK_COLS - 1) / BLOCK_COLS * BLOCK_COLS; }

/* Scratch of one call, in floats; the bias network's parameters rearranged for the
   products, its gradient accumulators, and one tile's activations. */
struct parts {
    int64_t hp, nbp, nip, lp; /* padded hidden, output (offsets and displacement), input
                                 and latent widths */
    float *pre_time, *w_in_lat_t, *w_mid_t, *w_out_t, *w_out, *w_mid, *w_in_lat, *b_mid, *b_out;
    float *g_w_in, *g_w_mid, *g_w_out, *g_b_in, *g_b_mid, *g_b_out;
    float *x_in, *lat_part, *a1, *h1, *a2, *h2, *off, *g_off, *g_h, *g_a, *g_lat;
};

/* Fills p's widths and the size of each of its arrays; returns how many there are. */
static int layout(const struct step_args *a, struct parts *p, float ***fields, int64_t *sizes) {
    const int64_t F = a->frames, H = a->hidden, NB = a->n_bias + a->n_motion, L = a->n_latent;
    p->hp = pad(H), p->nbp = pad(NB), p->nip = pad(a->n_time + L), p->lp = pad(L);
    float **f[] = {&p->pre_time, &p->w_in_lat_t, &p->w_mid_t, &p->w_out_t, &p->w_out, &p->w_mid,
                   &p->w_in_lat, &p->b_mid, &p->b_out, &p->g_w_in, &p->g_w_mid, &p->g_w_out,
                   &p->g_b_in, &p->g_b_mid, &p->g_b_out, &p->x_in, &p->lat_part, &p->a1, &p->h1,
                   &p->a2, &p->h2, &p->off, &p->g_off, &p->g_h, &p->g_a, &p->g_lat};
    const int64_t n[] = {F * p->hp, L * p->hp, H * p->hp, H * p->nbp, NB * p->hp, H * p->hp,
                         H * p->lp, p->hp, p->nbp, H * p->nip, H * p->hp, NB * p->hp,
                         p->hp, p->hp, p->nbp, F * p->nip, p->hp, F * p->hp, F * p->hp,
                         F * p->hp, F * p->hp, F * p->nbp, F * p->nbp, F * p->hp, F * p->hp, F * p->lp};
    const int count = sizeof(n) / sizeof(n[0]);
    for (int k = 0; k < count; k++) {
        fields[k] = f[k];
        sizes[k] = n[k];
    }
    return count;
}

static struct parts split(const struct step_args *a, float *s) {
    struct parts p;
    float **fields[32];
    int64_t sizes[32];
    int count = layout(a, &p, fields, sizes);
    for (int k = 0; k < count; k++) {
        *fields[k] = s;
        s += sizes[k];
    }
    return p;
}

size_t bias_scratch_floats(const struct step_args *a) {
    struct parts p;
    float **fields[32];
    int64_t sizes[32];
    int count = layout(a, &p, fields, sizes);
    size_t total = 0;
    for (int k = 0; k < count; k++) total += (size_t)sizes[k];
    return total;
}

static inline v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof(v)); }

/* y[f] = bias + sum_i x[f][i] W[i] for F rows: x rows of stride sx, of which n_in are
   used; W is (n_in, n) and y (F, n), n a multiple of BLOCK_COLS; bias NULL for none. */
static void rows_times(const float *restrict x, int64_t sx, int64_t F, int64_t n_in,
                       const float *restrict W, const float *restrict bias, int64_t n,
                       float *restrict y) {
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < n; c += BLOCK_COLS) {
            v8 acc[4];
            for (int v = 0; v < 4; v++) acc[v] = bias ? load8(bias + c + 8 * v) : splat(0.0f);
            for (int64_t i = 0; i < n_in; i++) {
                v8 xi = splat(x[f * sx + i]);
                for (int v = 0; v < 4; v++) acc[v] += xi * load8(W + i * n + c + 8 * v);
            }
            for (int v = 0; v < 4; v++) store8(y + f * n + c + 8 * v, acc[v]);
        }
}

/* G[o] += sum_f d[f][o] x[f] for o < n_out: a Linear weight's gradient; d rows of stride
   sd, x rows and G rows n long, n a multiple of BLOCK_COLS. */
static void weight_grad_rows(const float *restrict d, int64_t sd, const float *restrict x,
                             int64_t F, int64_t n_out, int64_t n, float *restrict G) {
    for (int64_t o = 0; o < n_out; o++)
        for (int64_t c = 0; c < n; c += BLOCK_COLS) {
            v8 acc[4];
            for (int v = 0; v < 4; v++) acc[v] = load8(G + o * n + c + 8 * v);
            for (int64_t f = 0; f < F; f++) {
                v8 df = splat(d[f * sd + o]);
                for (int v = 0; v < 4; v++) acc[v] += df * load8(x + f * n + c + 8 * v);
            }
            for (int v = 0; v < 4; v++) store8(G + o * n + c + 8 * v, acc[v]);
        }
}

/* sums[j] += sum_f d[f][j]; d (F, n). */
static void column_sums(const float *restrict d, int64_t F, int64_t n, float *restrict sums) {
    for (int64_t f = 0; f < F; f++)
        for (int64_t j = 0; j < n; j++) sums[j] += d[f * n + j];
}

/* exp(x) of 8 values: x = k ln 2 + r, exp(r) by its Taylor series to r^7 (|r| <= ln2/2,
   relative error below 2e-7), times 2^k put straight into the exponent bits. */
static inline v8 exp8(v8 x) {
    const v8 magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    v8i low = x < splat(-87.0f), high = x > splat(87.0f); /* beyond: float under/overflow */
    x = (v8)((low & (v8i)splat(-87.0f)) | (high & (v8i)splat(87.0f)) | (~(low | high) & (v8i)x));
    v8 t = x * splat(1.44269504088896341f) + magic;
    v8i k = (v8i)t - (v8i)magic;
    v8 r = x - (t - magic) * splat(0.693147180559945309f);
    v8 p = splat(1.0f / 5040) * r + splat(1.0f / 720);
    p = p * r + splat(1.0f / 120);
    p = p * r + splat(1.0f / 24);
    p = p * r + splat(1.0f / 6);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    return (v8)((v8i)p + (k << 23));
}

/* h = silu(a) for n values, n a multiple of 8. */
static void silu_rows(const float *restrict a, float *restrict h, int64_t n) {
    for (int64_t e = 0; e < n; e += 8) {
        v8 x = load8(a + e);
        store8(h + e, x / (splat(1.0f) + exp8(-x)));
    }
}

/* g *= silu'(a) = sigmoid(a) (1 + a (1 - sigmoid(a))) for n values, n a multiple of 8. */
static void silu_grad_rows(const float *restrict a, float *restrict g, int64_t n) {
    for (int64_t e = 0; e < n; e += 8) {
        v8 x = load8(a + e);
        v8 s = splat(1.0f) / (splat(1.0f) + exp8(-x));
        store8(g + e, load8(g + e) * s * (splat(1.0f) + x * (splat(1.0f) - s)));
    }
}

void bias_prepare(const struct step_args *a, float *scratch) {
    const int64_t F = a->frames, H = a->hidden, NT = a->n_time, L = a->n_latent;
    const int64_t NB = a->n_bias + a->n_motion;
    const int64_t NI = NT + L;
    struct parts p = split(a, scratch);
    memset(scratch, 0, sizeof(float) * bias_scratch_floats(a));
    for (int64_t o = 0; o < H; o++) {
        for (int64_t f = 0; f < F; f++) {
            float acc = a->b_in[o];
            for (int64_t i = 0; i < NT; i++) acc += a->w_in[o * NI + i] * a->time_features[f * NT + i];
            p.pre_time[f * p.hp + o] = acc;
        }
        for (int64_t i = 0; i < L; i++) {
            p.w_in_lat_t[i * p.hp + o] = a->w_in[o * NI + NT + i];
            p.w_in_lat[o * p.lp + i] = a->w_in[o * NI + NT + i];
        }
        for (int64_t i = 0; i < H; i++) {
            p.w_mid_t[i * p.hp + o] = a->w_mid[o * H + i];
            p.w_mid[o * p.hp + i] = a->w_mid[o * H + i];
        }
        p.b_mid[o] = a->b_mid[o];
    }
    for (int64_t j = 0; j < NB; j++) {
        for (int64_t i = 0; i < H; i++) {
            p.w_out_t[i * p.nbp + j] = a->w_out[j * H + i];
            p.w_out[j * p.hp + i] = a->w_out[j * H + i];
        }
        p.b_out[j] = a->b_out[j];
    }
}

/* Moves n accumulated values to out, leaving zeros behind. */
static float *move(float *acc, int64_t n, float *out) {
    memcpy(out, acc, sizeof(float) * n);
    memset(acc, 0, sizeof(float) * n);
    return out + n;
}

void bias_finish(const struct step_args *a, float *scratch, float *shared) {
    const int64_t H = a->hidden, NB = a->n_bias + a->n_motion, NI = a->n_time + a->n_latent;
    struct parts p = split(a, scratch);
    for (int64_t o = 0; o < H; o++) shared = move(p.g_w_in + o * p.nip, NI, shared);
    shared = move(p.g_b_in, H, shared);
    for (int64_t o = 0; o < H; o++) shared = move(p.g_w_mid + o * p.hp, H, shared);
    shared = move(p.g_b_mid, H, shared);
    for (int64_t j = 0; j < NB; j++) shared = move(p.g_w_out + j * p.hp, H, shared);
    move(p.g_b_out, NB, shared);
}

/* Displacement k of frame f of the tile whose forward pass p holds, times the input
   scale: what multiplies the tile's raw first-layer weights. */
static inline float displacement(const struct step_args *a, const struct parts *p, int64_t f,
                                 int64_t k) {
    const int64_t NB = a->n_bias;
    return p->off[f * p->nbp + NB + k] * a->offset_scale[NB + k] * a->input_scale;
}

/* Offset of layer l's biases in a table row, and its width. */
static int64_t layer_start(const struct step_args *a, int l, int64_t *width) {
    const int64_t hidden_width = (a->n_bias - 3) / a->depth;
    *width = l == a->depth ? 3 : hidden_width;
    return l * hidden_width;
}

void bias_forward(const struct step_args *a, int64_t t, float *scratch, float *table) {
    const int64_t F = a->frames, H = a->hidden, NB = a->n_bias, NT = a->n_time, L = a->n_latent;
    struct parts p = split(a, scratch);
    const float *lat = a->latents + t * L;
    for (int64_t f = 0; f < F; f++) {
        memcpy(p.x_in + f * p.nip, a->time_features + f * NT, sizeof(float) * NT);
        memcpy(p.x_in + f * p.nip + NT, lat, sizeof(float) * L);
    }
    rows_times(lat, 0, 1, L, p.w_in_lat_t, NULL, p.hp, p.lat_part);
    for (int64_t f = 0; f < F; f++)
        for (int64_t o = 0; o < p.hp; o++) p.a1[f * p.hp + o] = p.pre_time[f * p.hp + o] + p.lat_part[o];
    silu_rows(p.a1, p.h1, F * p.hp);
    rows_times(p.h1, p.hp, F, H, p.w_mid_t, p.b_mid, p.hp, p.a2);
    silu_rows(p.a2, p.h2, F * p.hp);
    rows_times(p.h2, p.hp, F, H, p.w_out_t, p.b_out, p.nbp, p.off);
    for (int l = 0; l <= a->depth; l++) {
        int64_t width, start = layer_start(a, l, &width);
        const float *base = a->base[l] + t * width;
        for (int64_t f = 0; f < F; f++)
            for (int64_t j = start; j < start + width; j++)
                table[f * NB + j] = base[j - start] * a->base_scale[j] + p.off[f * p.nbp + j] * a->offset_scale[j];
    }
    const int64_t W = (NB - 3) / a->depth;
    const float *w0 = a->weights[0] + t * 2 * W;
    for (int64_t k = 0; k < a->n_motion; k++)
        for (int64_t f = 0; f < F; f++) {
            const float d = displacement(a, &p, f, k);
            for (int64_t j = 0; j < W; j++) table[f * NB + j] += d * w0[k * W + j];
        }
}

void bias_backward(const struct step_args *a, int64_t t, float *scratch, const float *grad_table) {
    const int64_t F = a->frames, H = a->hidden, NB = a->n_bias, L = a->n_latent;
    struct parts p = split(a, scratch);
    for (int l = 0; l <= a->depth; l++) {
        int64_t width, start = layer_start(a, l, &width);
        float *g_base = a->grad_base[l] + t * width;
        for (int64_t j = start; j < start + width; j++) {
            float sum = 0.0f;
            for (int64_t f = 0; f < F; f++) sum += grad_table[f * NB + j];
            g_base[j - start] = sum * a->base_scale[j];
        }
    }
    for (int64_t f = 0; f < F; f++)
        for (int64_t j = 0; j < NB; j++) p.g_off[f * p.nbp + j] = grad_table[f * NB + j] * a->offset_scale[j];
    /* A displacement's gradient: the first layer's bias gradients through the tile's
       scaled first-layer weights. */
    const int64_t W = (NB - 3) / a->depth, NO = NB + a->n_motion;
    const float *w0 = a->weights[0] + t * 2 * W;
    for (int64_t k = 0; k < a->n_motion; k++)
        for (int64_t f = 0; f < F; f++) {
            float g = 0.0f;
            for (int64_t j = 0; j < W; j++) g += grad_table[f * NB + j] * w0[k * W + j];
            p.g_off[f * p.nbp + NB + k] = g * a->input_scale * a->offset_scale[NB + k];
        }
    column_sums(p.g_off, F, p.nbp, p.g_b_out);
    weight_grad_rows(p.g_off, p.nbp, p.h2, F, NO, p.hp, p.g_w_out);
    rows_times(p.g_off, p.nbp, F, NO, p.w_out, NULL, p.hp, p.g_h);
    silu_grad_rows(p.a2, p.g_h, F * p.hp);
    column_sums(p.g_h, F, p.hp, p.g_b_mid);
    weight_grad_rows(p.g_h, p.hp, p.h1, F, H, p.hp, p.g_w_mid);
    rows_times(p.g_h, p.hp, F, H, p.w_mid, NULL, p.hp, p.g_a);
    silu_grad_rows(p.a1, p.g_a, F * p.hp);
    column_sums(p.g_a, F, p.hp, p.g_b_in);
    weight_grad_rows(p.g_a, p.hp, p.x_in, F, H, p.nip, p.g_w_in);
    rows_times(p.g_a, p.hp, F, H, p.w_in_lat, NULL, p.lp, p.g_lat);
    float *g_lat = a->grad_latents + t * L;
    memset(g_lat, 0, sizeof(float) * L);
    for (int64_t f = 0; f < F; f++)
        for (int64_t i = 0; i < L; i++) g_lat[i] += p.g_lat[f * p.lp + i];
}

void bias_motion_grad(const struct step_args *a, int64_t t, const float *scratch,
                      const float *grad_table, float *grad_w0) {
    const int64_t F = a->frames, NB = a->n_bias, W = (NB - 3) / a->depth;
    struct parts p = split(a, (float *)scratch);
    for (int64_t k = 0; k < a->n_motion; k++)
        for (int64_t f = 0; f < F; f++) {
            const float d = displacement(a, &p, f, k);
            for (int64_t j = 0; j < W; j++) grad_w0[k * W + j] += d * grad_table[f * NB + j];
        }
}
