/* A frame from its latent grids: each grid brought to full size by separable 4-tap
 * interpolation, a per-pixel synthesis network over the stacked levels, then residual 3x3
 * convolutions over its RGB (the latent-grid representation of issue 30).
 *
 * Float arithmetic, like the codec's other renderers: the pixels may differ in the last
 * bits between machines; nothing that decides probabilities is computed here.
 * Pixels go through the network in blocks of BLOCK, planar, so that the inner loops run
 * over contiguous pixels and vectorise. Every stage splits its rows or blocks between
 * `threads` POSIX threads.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define MAX_THREADS 64
#define MAX_LEVELS 16
#define MAX_HIDDEN 64
#define TAPS 4

typedef struct {
    int64_t levels, height, width;
    const int64_t *grid_h, *grid_w;      /* each level's grid size */
    const float *const *grids;           /* each level's grid, row-major */
    /* Per level, per output row (column): TAPS source rows (columns) and their weights;
     * NULL for a level already at the output's size. */
    const int32_t *const *row_taps, *const *col_taps;
    const float *const *row_weights, *const *col_weights;
    int64_t layers;                      /* linear layers of the synthesis, the last to RGB */
    const int64_t *widths;               /* layers + 1 widths: levels, ..., 3 */
    const float *const *weights, *const *biases;  /* (out, in) and (out) per layer */
    const float *first_bias;             /* added to the first layer (a frame's bias), or NULL */
    int64_t refine_layers;
    const float *refine_weights, *refine_biases;  /* per layer (3, 3, 3, 3) and (3) */
    int64_t threads;
} synthesis;

/* What one stage does to items [begin, end) of its range. */
typedef void (*stage)(const void *job, int64_t begin, int64_t end);

typedef struct {
    stage run;
    const void *job;
    int64_t begin, end;
} share;

static void *run_share(void *arg) {
    share *sh = arg;
    sh->run(sh->job, sh->begin, sh->end);
    return NULL;
}

/* Runs a stage over items [0, n) split into `threads` contiguous shares; the calling thread
 * takes the first share, and a share whose thread cannot start is run here too. */
static void parallel(stage run, const void *job, int64_t n, int64_t threads) {
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if (threads > n) threads = n > 0 ? n : 1;
    share shares[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int64_t t = 0; t < threads; t++)
        shares[t] = (share){run, job, n * t / threads, n * (t + 1) / threads};
    for (int64_t t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, run_share, &shares[t]) == 0;
    run_share(&shares[0]);
    for (int64_t t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run_share(&shares[t]);
    }
}

/* One level's interpolation: its grid's rows to full width, then the output's rows. */
typedef struct {
    const synthesis *s;
    int64_t k;
    float *rows, *out;
} level_job;

static void widen_rows(const void *arg, int64_t begin, int64_t end) {
    const level_job *j = arg;
    const synthesis *s = j->s;
    int64_t w = s->width, gw = s->grid_w[j->k];
    const float *g = s->grids[j->k], *cw = s->col_weights[j->k];
    const int32_t *ct = s->col_taps[j->k];
    for (int64_t r = begin; r < end; r++)
        for (int64_t x = 0; x < w; x++) {
            float v = 0;
            for (int t = 0; t < TAPS; t++) v += cw[x * TAPS + t] * g[r * gw + ct[x * TAPS + t]];
            j->rows[r * w + x] = v;
        }
}

static void heighten(const void *arg, int64_t begin, int64_t end) {
    const level_job *j = arg;
    int64_t w = j->s->width;
    const int32_t *rt = j->s->row_taps[j->k];
    const float *rw = j->s->row_weights[j->k];
    for (int64_t y = begin; y < end; y++) {
        float *o = j->out + y * w;
        for (int64_t x = 0; x < w; x++) o[x] = 0;
        for (int t = 0; t < TAPS; t++) {
            float c = rw[y * TAPS + t];
            const float *src = j->rows + rt[y * TAPS + t] * w;
            for (int64_t x = 0; x < w; x++) o[x] += c * src[x];
        }
    }
}

/* The levels at the output's size, planar: stack[level][pixel]. */
static void upsample(const synthesis *s, float *stack, float *rows_buffer) {
    int64_t n = s->height * s->width;
    for (int64_t k = 0; k < s->levels; k++) {
        if (!s->col_taps[k]) {
            memcpy(stack + k * n, s->grids[k], sizeof(float) * n);
            continue;
        }
        level_job job = {s, k, rows_buffer, stack + k * n};
        parallel(widen_rows, &job, s->grid_h[k], s->threads);
        parallel(heighten, &job, s->height, s->threads);
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

typedef struct {
    const synthesis *s;
    const float *stack;
    float *rgb;
} network_job;

static void network_blocks(const void *arg, int64_t begin, int64_t end) {
    const network_job *j = arg;
    int64_t n = j->s->height * j->s->width;
    for (int64_t b = begin; b < end; b++)
        network(j->s, j->stack, n, b * BLOCK, n - b * BLOCK < BLOCK ? n - b * BLOCK : BLOCK, j->rgb);
}

/* One refinement layer: tmp = conv3x3(x) (edges repeated) over rows, then x += tmp with a
 * ReLU unless it is the last layer; planar 3 x h x w. */
typedef struct {
    const float *weights, *biases;
    int last;
    int64_t h, w;
    float *x, *tmp;
} refine_job;

static void convolve_rows(const void *arg, int64_t begin, int64_t end) {
    const refine_job *j = arg;
    int64_t h = j->h, w = j->w, n = h * w;
    for (int64_t o = 0; o < 3; o++)
        for (int64_t y = begin; y < end; y++) {
            float *d = j->tmp + o * n + y * w;
            for (int64_t x = 0; x < w; x++) d[x] = j->biases[o];
            for (int64_t i = 0; i < 3; i++)
                for (int64_t dy = -1; dy <= 1; dy++) {
                    int64_t sy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                    const float *row = j->x + i * n + sy * w;
                    for (int64_t dx = -1; dx <= 1; dx++) {
                        float c = j->weights[((o * 3 + i) * 3 + dy + 1) * 3 + dx + 1];
                        /* The inner columns without bounds checks, the two edges apart. */
                        for (int64_t x = 1; x < w - 1; x++) d[x] += c * row[x + dx];
                        d[0] += c * row[dx < 0 ? 0 : (dx > 0 && w > 1 ? 1 : 0)];
                        if (w > 1) d[w - 1] += c * row[dx > 0 ? w - 1 : w - 1 + dx];
                    }
                }
        }
}

static void add_rows(const void *arg, int64_t begin, int64_t end) {
    const refine_job *j = arg;
    int64_t n = j->h * j->w;
    for (int64_t o = 0; o < 3; o++)
        for (int64_t p = begin * j->w; p < end * j->w; p++) {
            float v = j->x[o * n + p] + j->tmp[o * n + p];
            j->x[o * n + p] = j->last || v > 0 ? v : 0;
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
    for (int64_t k = 0; k < s->levels; k++) tallest = s->grid_h[k] > tallest ? s->grid_h[k] : tallest;
    float *stack = malloc(sizeof(float) * (size_t)(s->levels * n));
    float *scratch = malloc(sizeof(float) * (size_t)((tallest * s->width > 3 * n) ? tallest * s->width : 3 * n));
    if (!stack || !scratch) {
        free(stack);
        free(scratch);
        return 1;
    }
    upsample(s, stack, scratch);
    network_job job = {s, stack, out};
    parallel(network_blocks, &job, (n + BLOCK - 1) / BLOCK, s->threads);
    for (int64_t l = 0; l < s->refine_layers; l++) {
        refine_job r = {s->refine_weights + l * 81, s->refine_biases + l * 3,
                        l == s->refine_layers - 1, s->height, s->width, out, scratch};
        parallel(convolve_rows, &r, s->height, s->threads);
        parallel(add_rows, &r, s->height, s->threads);
    }
    free(stack);
    free(scratch);
    return 0;
}
