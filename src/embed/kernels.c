/*
 * Encoder kernels. Sums that decide the output (LayerNorm statistics, the
 * softmax denominator, the L2 norm) accumulate in double, so their rounding
 * does not grow with the row width.
 */
#include <math.h>

#include "embed/kernels.h"

void an__add_bias(float *x, const float *bias, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        for (size_t c = 0; c < cols; c++)
            row[c] += bias[c];
    }
}


void an__add_inplace(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}


void an__layer_norm(float *x, const float *gamma, const float *beta, size_t rows, size_t cols,
                    float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;

        double sum = 0;
        for (size_t c = 0; c < cols; c++)
            sum += row[c];
        float mean = (float)(sum / (double)cols);

        double squares = 0;
        for (size_t c = 0; c < cols; c++) {
            float d = row[c] - mean;
            squares += (double)d * d;
        }
        float inv_std = (float)(1.0 / sqrt(squares / (double)cols + eps));

        for (size_t c = 0; c < cols; c++)
            row[c] = (row[c] - mean) * inv_std * gamma[c] + beta[c];
    }
}


void an__gelu_erf(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
}


void an__softmax_rows(float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;

        float max = row[0];
        for (size_t c = 1; c < cols; c++)
            max = row[c] > max ? row[c] : max;

        double sum = 0;
        for (size_t c = 0; c < cols; c++) {
            row[c] = expf(row[c] - max);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (size_t c = 0; c < cols; c++)
            row[c] *= inv;
    }
}


void an__l2_normalize(float *x, size_t n)
{
    double squares = 0;
    for (size_t i = 0; i < n; i++)
        squares += (double)x[i] * x[i];
    double norm = sqrt(squares);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}
