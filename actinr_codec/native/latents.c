/* Decoding latent grids under the fixed-point context model, as docs/bitstream.md defines
 * it ("Range coder", "Latent grids under a context model"): the same grids, or the same
 * refusal, as bitstream/latents.py's decode_grids, one symbol at a time instead of one
 * numpy call per wave.
 *
 * Everything is integer arithmetic, so the result does not depend on the compiler or the
 * CPU. Right shifts of negative values go through floor_shift, which C defines, rather
 * than through >> on a signed value, which C leaves to the implementation.
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

enum { LATENT_OK = 0, LATENT_INVALID = 1, LATENT_LEFT_OVER = 2, LATENT_NO_MEMORY = 3 };

static const int64_t DECAYS[SCALES] = {
    0, 0, 1, 5, 22, 79, 229, 563, 1200, 2268, 3874, 6075, 8869, 12192, 15933, 19953, 24109,
    28267, 32314, 36162, 39750, 43041, 46019, 48681, 51039, 53111, 54917, 56484, 57835,
    58997, 59992, 60842, 61565, 62181, 62703, 63145, 63520, 63836, 64104, 64329, 64520,
    64681, 64816, 64930, 65026, 65107, 65175, 65232, 65280, 65321, 65355, 65384, 65408,
    65428, 65446, 65460, 65472,
};

/* floor(x / 2**s) for s >= 0: ~x = -x - 1 is not negative when x is. */
static inline int64_t floor_shift(int64_t x, int s) {
    return x >= 0 ? x >> s : ~((~x) >> s);
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

/* The mean in eighths and the scale index of the context a[0..inputs-1]. */
static void parameters(const network *net, const int64_t *context, int64_t *eighths,
                       int64_t *scale) {
    int64_t a[MAX_WIDTH > MAX_INPUTS ? MAX_WIDTH : MAX_INPUTS], next[MAX_WIDTH];
    memcpy(a, context, sizeof(int64_t) * net->sizes[0]);
    const int64_t *p = net->params;
    int frac = 0;  /* fractional bits of a: the context holds integers */
    for (int64_t k = 0; k < net->layers; k++) {
        int64_t in = net->sizes[k], out = net->sizes[k + 1];
        const int64_t *w = p, *b = p + out * in;
        for (int64_t o = 0; o < out; o++) {
            int64_t acc = b[o] * (INT64_C(1) << frac);
            for (int64_t i = 0; i < in; i++) acc += w[o * in + i] * a[i];
            int64_t v = rescale(acc, (int)net->shift + frac - ACT_BITS);
            if (k < net->layers - 1 && v < 0) v = 0;
            next[o] = clamp(v, -MAX_ACTIVATION, MAX_ACTIVATION);
        }
        memcpy(a, next, sizeof(int64_t) * out);
        p = b + out;
        frac = ACT_BITS;
    }
    *eighths = rescale(a[0], ACT_BITS - 3);
    *scale = clamp(rescale(a[1], ACT_BITS - 2), SCALE_MIN, SCALE_MAX);
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
    for (int64_t j = 0; j < n; j++) {
        int64_t upper = below(p, 8 * (lo + j) + 4 - m), mass = upper - edge;
        edge = upper;
        f[j] = mass ? mass * free / total : 0;  /* most of a narrow law's bins are empty */
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
    int64_t *padded = NULL, *f = NULL, *powers = NULL;
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
        f = malloc(sizeof *f * (size_t)n);
        powers = malloc(sizeof *powers * (size_t)(SCALES * reach));
        if (!padded || !f || !powers) { status = LATENT_NO_MEMORY; break; }
        char ready[SCALES] = {0};
        const int32_t *ref = refs[g];
        int64_t context[MAX_INPUTS] = {0};  /* a reference's ten inputs stay 0 without one */
        for (int64_t t = 0; t < w + 3 * (h - 1) && status == LATENT_OK; t++) {
            int64_t r0 = t - w + 1 > 0 ? (t - w + 1 + 2) / 3 : 0, r1 = t / 3 < h - 1 ? t / 3 : h - 1;
            for (int64_t r = r0; r <= r1; r++) {
                int64_t c = t - 3 * r, *row = padded + r * pw + c + 2;
                for (int64_t k = 0; k < 5; k++) {
                    context[k] = row[k - 2];
                    context[5 + k] = row[pw + k - 2];
                }
                context[10] = row[2 * pw - 2];
                context[11] = row[2 * pw - 1];
                if (sizes[0] > CONTEXT && ref) {
                    for (int64_t i = 0; i < 3; i++)
                        for (int64_t j = 0; j < 3; j++)
                            context[CONTEXT + 3 * i + j] =
                                ref[clamp(r + i - 1, 0, h - 1) * w + clamp(c + j - 1, 0, w - 1)];
                    context[CONTEXT + 9] = 1;
                }
                int64_t m, k;
                parameters(&net, context, &m, &k);
                int64_t *p = powers + (k - SCALE_MIN) * reach;
                if (!ready[k - SCALE_MIN]) {
                    decay_powers(DECAYS[k - SCALE_MIN], p, reach);
                    ready[k - SCALE_MIN] = 1;
                }
                table(p, m, lo, hi, f);
                int64_t i = decode_symbol(&d, f, n);
                if (i < 0) { status = LATENT_INVALID; break; }
                row[2 * pw] = lo + i;
                y[r * w + c] = (int32_t)(lo + i);
            }
        }
        free(padded);
        free(f);
        free(powers);
        padded = f = powers = NULL;
    }
    free(padded);
    free(f);
    free(powers);
    if (status != LATENT_OK) return status;
    /* The end check: every word read, and the point inside the last interval's reach. */
    int decoded = d.range != UINT64_MAX;
    if (d.n_words > 2 + d.renormalisations ||
        (decoded && d.point - d.lower >= (UINT64_C(1) << 33) - 1))
        return LATENT_LEFT_OVER;
    return LATENT_OK;
}
