/* Decoding latent grids under the fixed-point context model, as docs/bitstream.md defines
 * it ("Range coder", "Latent grids under a context model"): the same grids, or the same
 * refusal, as bitstream/latents.py's decode_grids, a wave's context network in one call
 * and its symbols one at a time, instead of one numpy call per wave.
 *
 * Every value that decides a symbol is computed in integers (one floating-point product
 * estimates a quotient that integer checks then make exact), so the result does not
 * depend on the compiler or the CPU. Right shifts of negative values go through
 * floor_shift, which C defines, rather than through >> on a signed value, which C leaves
 * to the implementation.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONTEXT 12
#define REFERENCE 10
#define ACT_BITS 8
#define MAX_INPUTS (CONTEXT + REFERENCE)
#define MAX_WIDTH 64
#define MAX_LAYERS 4
#define MAX_ACTIVATION (INT64_C(1) << 24)
#define SCALE_MIN (-28)
#define SCALE_MAX 28
#define SCALES (SCALE_MAX - SCALE_MIN + 1)
#define PRECISION 24
#define TOTAL (INT64_C(1) << PRECISION)
#define FRAC_BITS 30
#define ONE (INT64_C(1) << FRAC_BITS)
/* The widest range whose tables are kept once built: SCALES * (8 n + 1) * n frequencies
 * is 4 MB at most. */
#define KEPT_TABLES_MAX_N 32

enum { LATENT_OK = 0, LATENT_INVALID = 1, LATENT_LEFT_OVER = 2, LATENT_NO_MEMORY = 3 };

static const int64_t DECAYS[SCALES] = {
    0, 0, 1, 5, 22, 79, 229, 563, 1200, 2268, 3874, 6075, 8869, 12192, 15933, 19953, 24109,
    28267, 32314, 36162, 39750, 43041, 46019, 48681, 51039, 53111, 54917, 56484, 57835,
    58997, 59992, 60842, 61565, 62181, 62703, 63145, 63520, 63836, 64104, 64329, 64520,
    64681, 64816, 64930, 65026, 65107, 65175, 65232, 65280, 65321, 65355, 65384, 65408,
    65428, 65446, 65460, 65472,
};

/* floor(x / 2**s) for 0 < s < 62 and |x| < 2**62, without a branch (so that loops over
 * latents vectorise): x + 2**62 is not negative, and 2**62 / 2**s is an integer. Every
 * sum the network makes stays below 2**47 (64 inputs below 2**24 times parameters below
 * 2**15). */
static inline int64_t floor_shift(int64_t x, int s) {
    const int64_t lift = INT64_C(1) << 62;
    return (int64_t)((uint64_t)(x + lift) >> s) - (lift >> s);
}

/* x * 2**-s rounded half up for s > 0, x * 2**-s exactly for s <= 0. */
static inline int64_t rescale(int64_t x, int s) {
    return s > 0 ? floor_shift(x + (INT64_C(1) << (s - 1)), s) : x * (INT64_C(1) << -s);
}

static inline int64_t clamp(int64_t x, int64_t lo, int64_t hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/* P[0..length-1] of section "Entropy models": 2**30 (d / 2**16)**j by rounded products. */
static void decay_powers(int64_t decay, int64_t *p, int64_t length) {
    p[0] = ONE;
    for (int64_t j = 1; j < length; j++) {
        if (j == 1) {
            p[1] = decay << (FRAC_BITS - 16);
            continue;
        }
        int64_t b = 1;
        while (2 * b <= j) b *= 2;
        int64_t x = j == b ? p[b / 2] * p[b / 2] : p[b] * p[j - b];
        p[j] = (x + (ONE >> 1)) >> FRAC_BITS;
    }
}

typedef struct {
    const uint32_t *words;
    int64_t n_words, next, renormalisations;
    uint64_t lower, range, point;
} decoder;

static uint32_t next_word(decoder *d) {
    /* A read past the end gives 0, as the format says. */
    return d->next < d->n_words ? d->words[d->next++] : (d->next++, 0u);
}

/* The index of the symbol at the decoder's point under frequencies f[0..n-1] (summing to
 * 2**24), or -1 for invalid data. */
static int64_t decode_symbol(decoder *d, const int64_t *f, int64_t n) {
    uint64_t scale = d->range >> PRECISION;
    uint64_t q = (d->point - d->lower) / scale;
    if (q >= (uint64_t)TOTAL) return -1;
    uint64_t c = 0;
    int64_t i = 0;
    while (i < n - 1 && c + (uint64_t)f[i] <= q) c += (uint64_t)f[i++];
    d->lower += scale * c;
    d->range = scale * (uint64_t)f[i];
    if (d->range < (UINT64_C(1) << 32)) {
        d->lower <<= 32;
        d->range <<= 32;
        d->point = (d->point << 32) | next_word(d);
        d->renormalisations++;
    }
    return i;
}

typedef struct {
    int64_t layers, shift;
    const int64_t *sizes;   /* layers + 1 widths: inputs, ..., 2 */
    const int64_t *params;  /* per layer: weights (out x in, row-major), then biases */
} network;

/* The mean in eighths and the scale index of each of n contexts, held input by input:
 * a[i * stride + j] is input i of context j. activations holds 2 * MAX_WIDTH * stride
 * values and sums stride. The loops run over the contexts innermost, where they vectorise:
 * one context at a time, the network was half of the decoder's time. Inputs (latents
 * below 2**15), parameters (below 2**15) and activations (clamped to 2**24) fit 32 bits,
 * and each product is taken to 64 bits, where the sums are made. */
static void parameters(const network *net, const int32_t *a, int64_t stride, int64_t n,
                       int32_t *activations, int64_t *sums, int64_t *eighths,
                       int64_t *scales) {
    const int64_t *p = net->params;
    int frac = 0;  /* fractional bits of a: the context holds integers */
    for (int64_t k = 0; k < net->layers; k++) {
        int64_t in = net->sizes[k], out = net->sizes[k + 1];
        const int64_t *w = p, *b = p + out * in;
        int32_t *next = activations + (k & 1) * MAX_WIDTH * stride;
        int s = (int)net->shift + frac - ACT_BITS;
        int hidden = k < net->layers - 1;
        for (int64_t o = 0; o < out; o++) {
            int64_t bias = b[o] * (INT64_C(1) << frac);
            for (int64_t j = 0; j < n; j++) sums[j] = bias;
            for (int64_t i = 0; i < in; i++) {
                const int32_t weight = (int32_t)w[o * in + i], *x = a + i * stride;
                for (int64_t j = 0; j < n; j++) sums[j] += (int64_t)weight * x[j];
            }
            int32_t *y = next + o * stride;
            for (int64_t j = 0; j < n; j++) {
                int64_t v = rescale(sums[j], s);
                if (hidden && v < 0) v = 0;
                y[j] = (int32_t)clamp(v, -MAX_ACTIVATION, MAX_ACTIVATION);
            }
        }
        a = next;
        p = b + out;
        frac = ACT_BITS;
    }
    for (int64_t j = 0; j < n; j++) {
        eighths[j] = rescale(a[j], ACT_BITS - 3);
        scales[j] = clamp(rescale(a[stride + j], ACT_BITS - 2), SCALE_MIN, SCALE_MAX);
    }
}

/* Mass of the Laplace law below an edge e eighths from its mean, 30-bit fixed point. */
static inline int64_t below(const int64_t *p, int64_t e) {
    return e < 0 ? p[-e] >> 1 : ONE - (p[e] >> 1);
}

/* The frequencies f[0..n-1] of symbols lo..hi under mean m (eighths, clamped here) with
 * the powers p of the scale's decay. */
static void table(const int64_t *p, int64_t m, int64_t lo, int64_t hi, int64_t *f) {
    int64_t n = hi - lo + 1, free = TOTAL - n;
    m = clamp(m, 8 * lo, 8 * hi);
    /* The bins' masses telescope: their sum is the mass between the outer edges. */
    int64_t total = below(p, 8 * hi + 4 - m) - below(p, 8 * lo - 4 - m);
    int64_t sum = 0, peak = 0, peak_mass = -1, edge = below(p, 8 * lo - 4 - m);
    /* floor(mass * free / total) as a product with the reciprocal, then made exact by
     * integer checks: the product lies within far less than 1 of the quotient (below
     * 2**24), so a check moves it once at most; a division per bin was a quarter of the
     * decoder's time. */
    double ratio = (double)free / (double)total;  /* total > 0: m lies between the edges */
    for (int64_t j = 0; j < n; j++) {
        int64_t upper = below(p, 8 * (lo + j) + 4 - m), mass = upper - edge;
        edge = upper;
        int64_t x = mass * free, q = (int64_t)((double)mass * ratio);
        while (q * total > x) q--;
        while ((q + 1) * total <= x) q++;
        f[j] = q;
        sum += f[j];
        if (mass > peak_mass) peak_mass = mass, peak = j;
    }
    f[peak] += free - sum;
    for (int64_t j = 0; j < n; j++) f[j] += 1;
}

/* Decodes n_grids grids (grids: h, w, lo, hi each; refs: each one's reference grid of the
 * same shape or NULL) from one range-coder stream of n_words words into out, the grids'
 * latents one after the other in row-major order. Returns a LATENT_* code. */
int64_t latent_decode(const uint32_t *words, int64_t n_words, int64_t n_grids,
                      const int64_t *grids, const int32_t *const *refs, int64_t layers,
                      const int64_t *sizes, const int64_t *params, int64_t shift,
                      int32_t *out) {
    network net = {layers, shift, sizes, params};
    decoder d = {words, n_words, 0, 0, 0, UINT64_MAX, 0};
    d.point = (uint64_t)next_word(&d) << 32;
    d.point |= next_word(&d);
    int64_t status = LATENT_OK;
    /* A wave holds at most one latent a row. Per grid: the padded grid, a table, the
     * powers of each scale; per wave: its contexts, the network's activations, and each
     * latent's mean and scale. */
    int64_t cap = 1;
    for (int64_t g = 0; g < n_grids; g++) cap = grids[4 * g] > cap ? grids[4 * g] : cap;
    int32_t *contexts = calloc((size_t)(MAX_INPUTS * cap), sizeof *contexts);
    int32_t *activations = calloc((size_t)(2 * MAX_WIDTH * cap), sizeof *activations);
    int64_t *sums = malloc(sizeof *sums * (size_t)cap);
    int64_t *means = malloc(sizeof *means * (size_t)cap);
    int64_t *scales = malloc(sizeof *scales * (size_t)cap);
    int64_t *slots = malloc(sizeof *slots * (size_t)cap);
    int64_t *padded = NULL, *f = NULL, *powers = NULL;
    char *built = NULL;
    if (!contexts || !activations || !sums || !means || !scales || !slots) status = LATENT_NO_MEMORY;
    for (int64_t g = 0; g < n_grids && status == LATENT_OK; g++) {
        int64_t h = grids[4 * g], w = grids[4 * g + 1], lo = grids[4 * g + 2],
                hi = grids[4 * g + 3], n = hi - lo + 1;
        int32_t *y = out;
        out += h * w;
        if (lo == hi) {
            for (int64_t i = 0; i < h * w; i++) y[i] = (int32_t)lo;
            continue;
        }
        /* Two rows of zeros above and two columns of zeros each side, as the context reads. */
        int64_t pw = w + 4, reach = 8 * n + 16;
        padded = calloc((size_t)((h + 2) * pw), sizeof *padded);
        /* A table depends on the scale index and the mean (clamped to 8 lo .. 8 hi) alone:
         * for a narrow range each one met is kept, 8 n + 1 means by SCALES scales of n
         * frequencies (calloc's pages are only taken where a table is written). */
        int64_t means_per_scale = 8 * n + 1, kept = n <= KEPT_TABLES_MAX_N;
        f = kept ? calloc((size_t)(SCALES * means_per_scale * n), sizeof *f)
                 : malloc(sizeof *f * (size_t)n);
        built = kept ? calloc((size_t)(SCALES * means_per_scale), 1) : NULL;
        if (kept && !built) { status = LATENT_NO_MEMORY; break; }
        powers = malloc(sizeof *powers * (size_t)(SCALES * reach));
        if (!padded || !f || !powers) { status = LATENT_NO_MEMORY; break; }
        char ready[SCALES] = {0};
        const int32_t *ref = refs[g];
        /* A reference's ten inputs are 0 without one. */
        int with_reference = sizes[0] > CONTEXT && ref;
        if (sizes[0] > CONTEXT)
            memset(contexts + CONTEXT * cap, 0, sizeof *contexts * (size_t)(REFERENCE * cap));
        /* The law of a context of zeros (its reference's too, where it has one). */
        for (int64_t i = 0; i < sizes[0]; i++) contexts[i * cap] = 0;
        if (with_reference) contexts[(CONTEXT + 9) * cap] = 1;
        parameters(&net, contexts, cap, 1, activations, sums, means, scales);
        int64_t zero_mean = means[0], zero_scale = scales[0];
        for (int64_t t = 0; t < w + 3 * (h - 1) && status == LATENT_OK; t++) {
            int64_t r0 = t - w + 1 > 0 ? (t - w + 1 + 2) / 3 : 0, r1 = t / 3 < h - 1 ? t / 3 : h - 1;
            int64_t count = r1 - r0 + 1, batch = 0;
            /* The wave's contexts come from earlier waves only. A context of zeros (most
             * of a low rate's latents: 63-72 % of tree's and carphone's at quality 8) takes
             * the grid's zero law; the others go to the network, in a batch. */
            for (int64_t j = 0; j < count; j++) {
                int64_t r = r0 + j, c = t - 3 * r, any = 0;
                const int64_t *row = padded + r * pw + c + 2;
                for (int64_t k = 0; k < 5; k++) {
                    contexts[k * cap + batch] = (int32_t)row[k - 2];
                    contexts[(5 + k) * cap + batch] = (int32_t)row[pw + k - 2];
                    any |= row[k - 2] | row[pw + k - 2];
                }
                contexts[10 * cap + batch] = (int32_t)row[2 * pw - 2];
                contexts[11 * cap + batch] = (int32_t)row[2 * pw - 1];
                any |= row[2 * pw - 2] | row[2 * pw - 1];
                if (with_reference) {
                    for (int64_t i = 0; i < 3; i++)
                        for (int64_t k = 0; k < 3; k++) {
                            int32_t x = ref[clamp(r + i - 1, 0, h - 1) * w + clamp(c + k - 1, 0, w - 1)];
                            contexts[(CONTEXT + 3 * i + k) * cap + batch] = x;
                            any |= x;
                        }
                    contexts[(CONTEXT + 9) * cap + batch] = 1;
                }
                slots[j] = any ? batch++ : -1;
            }
            parameters(&net, contexts, cap, batch, activations, sums, means, scales);
            for (int64_t j = 0; j < count; j++) {
                int64_t r = r0 + j, c = t - 3 * r, slot = slots[j];
                int64_t m = slot < 0 ? zero_mean : means[slot], k = slot < 0 ? zero_scale : scales[slot];
                int64_t *p = powers + (k - SCALE_MIN) * reach;
                if (!ready[k - SCALE_MIN]) {
                    decay_powers(DECAYS[k - SCALE_MIN], p, reach);
                    ready[k - SCALE_MIN] = 1;
                }
                int64_t *freqs = f;
                if (kept) {
                    int64_t key = (k - SCALE_MIN) * means_per_scale +
                                  clamp(m, 8 * lo, 8 * hi) - 8 * lo;
                    freqs = f + key * n;
                    if (!built[key]) {
                        table(p, m, lo, hi, freqs);
                        built[key] = 1;
                    }
                } else {
                    table(p, m, lo, hi, f);
                }
                int64_t i = decode_symbol(&d, freqs, n);
                if (i < 0) { status = LATENT_INVALID; break; }
                padded[(r + 2) * pw + c + 2] = lo + i;
                y[r * w + c] = (int32_t)(lo + i);
            }
        }
        free(padded);
        free(f);
        free(powers);
        free(built);
        padded = f = powers = NULL;
        built = NULL;
    }
    free(padded);
    free(f);
    free(powers);
    free(built);
    free(contexts);
    free(activations);
    free(sums);
    free(means);
    free(scales);
    free(slots);
    if (status != LATENT_OK) return status;
    /* The end check: every word read, and the point inside the last interval's reach. */
    int decoded = d.range != UINT64_MAX;
    if (d.n_words > 2 + d.renormalisations ||
        (decoded && d.point - d.lower >= (UINT64_C(1) << 33) - 1))
        return LATENT_LEFT_OVER;
    return LATENT_OK;
}
