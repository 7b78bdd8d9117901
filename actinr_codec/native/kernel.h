/* Declarations shared by the native kernel's C files (tile_mlp.c, bias_net.c), and the one
   definition of its interface: kernel.py reads KERNEL_VERSION and struct step_args from
   this file (read_header) instead of keeping a copy. */

#ifndef ACTINR_KERNEL_H
#define ACTINR_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/* Hidden layers at most: ModelConfig's limit, which kernel.py passes so that the two
   cannot drift apart. */
#ifndef MAX_DEPTH
#error "compile with -DMAX_DEPTH=<most hidden layers>"
#endif

/* Raised with any change to step_args or tile_step; kernel.py checks that a built library
   reports the version and struct layout (kernel_layout in tile_mlp.c) it read here before
   it calls the kernel. */
#define KERNEL_VERSION 3

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }

/* Everything one fitting step reads and writes, filled in by kernel.py. All arrays are
   float32 in C order with PyTorch's shapes: tile weights (T, in, out) for the layers
   2 -> width, depth - 1 times width -> width, width -> 3; base biases (T, out); the bias
   network's Linear weights (out, in). Arrays indexed by tile are written only at the
   tiles a call covers, so calls on disjoint tiles can run at once.
   kernel.py builds its ctypes Structure from this declaration and sets the fields by name:
   each declares int64_t, int32_t, float or double values (const or not), plain, pointers
   or arrays whose size is an expression of integers and MAX_DEPTH. */
struct step_args {
    int64_t frames, points, depth, n_time, n_latent, hidden, n_bias;
    /* Displacement outputs of the bias network (ModelConfig.motion): 0, or 2 for (y, x).
       They are the last rows of w_out and b_out and the last entries of offset_scale,
       which scales them into the tile's displacement; the table's first layer then moves
       by that displacement times the first layer's scaled weights. */
    int64_t n_motion;
    float input_scale; /* the activation's input factor, folded into hidden weights */
    float loss_scale;  /* the loss's derivative per unit of weighted squared error */
    /* The draw, as sampler.Sampler makes it: uniforms (T, P) for y and x; each tile's
       pixel box (T, 4) as y0, rows, x0, columns; the tile-local coordinate of each row
       and column of the box (T, row_stride) and (T, col_stride); the frames pixel-major,
       (H * W, pixel_frames * 3), and the pixel weights (H * W, pixel_frames) or NULL. The
       step's frame f is the frames' frame_first + f * frame_step. */
    const float *uniform_y, *uniform_x;
    const int64_t *boxes;
    const float *row_coords, *col_coords;
    int64_t row_stride, col_stride, frame_width, pixel_frames, frame_first, frame_step;
    const float *pixels, *pixel_weight;
    const float *weights[MAX_DEPTH + 1], *base[MAX_DEPTH + 1];
    const float *latents;       /* (T, n_latent) */
    const float *time_features; /* (F, n_time) */
    const float *w_in, *b_in, *w_mid, *b_mid, *w_out, *b_out; /* w_out (n_bias + n_motion, hidden) */
    const float *base_scale;   /* (n_bias,) */
    const float *offset_scale; /* (n_bias + n_motion,) */
    float *grad_weights[MAX_DEPTH + 1], *grad_base[MAX_DEPTH + 1], *grad_latents;
    double *loss; /* (T,) weighted squared error per tile */
};

/* Floats of scratch memory bias_net.c needs for one call. */
size_t bias_scratch_floats(const struct step_args *a);
/* Once per call, before the tiles: what all tiles share. */
void bias_prepare(const struct step_args *a, float *scratch);
/* Tile t's biases of every frame and layer, (F, n_bias), hidden ones pre-scaled. */
void bias_forward(const struct step_args *a, int64_t t, float *scratch, float *table);
/* Back from the gradient of tile t's table to its base biases and latent, and into the
   bias network's gradients, which the scratch accumulates over the call's tiles. */
void bias_backward(const struct step_args *a, int64_t t, float *scratch, const float *grad_table);
/* With displacement outputs: adds what they contribute to tile t's first-layer weight
   gradient (raw weights, (2, width)) to grad_w0; call after bias_backward of tile t. */
void bias_motion_grad(const struct step_args *a, int64_t t, const float *scratch,
                      const float *grad_table, float *grad_w0);
/* Writes the bias network gradients accumulated since the last call to `shared`, in the
   order w_in, b_in, w_mid, b_mid, w_out, b_out, and starts accumulating afresh. */
void bias_finish(const struct step_args *a, float *scratch, float *shared);

#endif
