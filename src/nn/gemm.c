/* gemm.c: the GEMM entry point (include/beit/gemm.h). fp32 = one cblas_sgemm, argument for
 * argument, so results are those of the direct call. */
#include "beit/gemm.h"

#include "beit/error.h"

#include <cblas.h>

const gemm_ctx gemm_fp32 = {GEMM_FP32};

static CBLAS_TRANSPOSE cblas_op(gemm_trans t) { return t == GEMM_T ? CblasTrans : CblasNoTrans; }

void gemm(const gemm_ctx *g, gemm_trans ta, gemm_trans tb, int M, int N, int K, float alpha, const float *A,
          int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    switch (g->prec) {
    case GEMM_FP32:
        cblas_sgemm(CblasRowMajor, cblas_op(ta), cblas_op(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    beit_fatal(BEIT_EXIT_FAILURE, "gemm: unknown precision %d", (int)g->prec);
}

void gemm_batched(const gemm_ctx *g, gemm_trans ta, gemm_trans tb, int M, int N, int K, float alpha,
                  const float *A, int lda, size_t strideA, const float *B, int ldb, size_t strideB, float beta,
                  float *C, int ldc, size_t strideC, int batch) {
    for (int i = 0; i < batch; i++)
        gemm(g, ta, tb, M, N, K, alpha, A + (size_t)i * strideA, lda, B + (size_t)i * strideB, ldb, beta,
             C + (size_t)i * strideC, ldc);
}
