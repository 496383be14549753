/* gemm.h: the one entry point for every matrix product of the project (the nn ops, the
 * convolutions, the dVAE's V-wide 1x1 layers, `beit bench sgemm`).
 *
 *   C[M,N] = alpha * op(A) op(B) + beta * C        row-major, op(X) = X or X^T
 *   op(A) is [M,K]: A is [M,K] (lda >= K) untransposed, [K,M] (lda >= M) transposed;
 *   op(B) is [K,N]: B is [K,N] (ldb >= N) untransposed, [N,K] (ldb >= K) transposed;
 *   C is [M,N] with ldc >= N. beta = 0: C is written, never read (BLAS semantics).
 *
 * Precision: a `gemm_ctx` passed by pointer says how a product is computed. Today the only
 * precision is GEMM_FP32: exactly one cblas_sgemm with the caller's arguments, so routing a
 * product through here changes no bit. A later bf16 backend (inputs rounded to bf16, fp32
 * accumulation and fp32 output) becomes a second enum value plus, in the same struct, the
 * caller-owned workspace for the rounded copies of A and B -- hence a struct rather than a bare
 * enum argument: adding the workspace then changes no call site, and the choice stays with
 * the caller (who owns the ctx), never in a process-wide switch. The nn ops take no context
 * today, so they pass &gemm_fp32 (a constant); threading a model's ctx through them is the
 * bf16 work's job.
 *
 * Profiling stays at the call sites (prof.h): its time and FLOP counters are charged per
 * category (linear, attention, conv), which only the caller knows. */
#ifndef BEIT_GEMM_H
#define BEIT_GEMM_H

#include <stddef.h>

typedef enum {
    GEMM_FP32 = 0, /* cblas_sgemm: fp32 inputs, accumulation and output */
} gemm_prec;

typedef struct {
    gemm_prec prec;
} gemm_ctx;

/* The fp32 context: what every product uses today. */
extern const gemm_ctx gemm_fp32;

typedef enum { GEMM_N = 0, GEMM_T = 1 } gemm_trans; /* op(X) = X, op(X) = X^T */

/* C[M,N] = alpha * op(A) op(B) + beta * C (shapes above). An unknown precision is fatal. */
void gemm(const gemm_ctx *g, gemm_trans ta, gemm_trans tb, int M, int N, int K, float alpha, const float *A,
          int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* `batch` independent products of the same shape; product i reads A + i*strideA,
 * B + i*strideB and updates C + i*strideC (strides in floats; 0 repeats an operand).
 * Today: gemm() for i = 0, 1, ..., batch - 1 in that order. */
void gemm_batched(const gemm_ctx *g, gemm_trans ta, gemm_trans tb, int M, int N, int K, float alpha,
                  const float *A, int lda, size_t strideA, const float *B, int ldb, size_t strideB, float beta,
                  float *C, int ldc, size_t strideC, int batch);

#endif
