/*
 * Sentence-transformers pooling of one sentence's token states: CLS, max,
 * mean and mean divided by sqrt(length). Sentences arrive unpadded, so every
 * row is a real token and no attention mask is needed here.
 */
#include <math.h>
#include <string.h>

#include "embed/bert_forward.h"

size_t an__pool_dims(unsigned modes, size_t hidden_size)
{
    size_t n = 0;
    for (unsigned bit = AN__POOL_CLS; bit <= AN__POOL_MEAN_SQRT_LEN; bit <<= 1)
        n += (modes & bit) ? hidden_size : 0;
    return n;
}


/* Column sums of the tokens rows, in double so long sentences lose no precision. */
static void column_mean(const float *hidden, size_t tokens, size_t h, double divisor, float *out)
{
    for (size_t c = 0; c < h; c++) {
        double sum = 0;
        for (size_t t = 0; t < tokens; t++)
            sum += hidden[t * h + c];
        out[c] = (float)(sum / divisor);
    }
}


void an__pool(unsigned modes, const float *hidden, size_t tokens, size_t h, float *out)
{
    if (modes & AN__POOL_CLS) {
        memcpy(out, hidden, h * sizeof(float));
        out += h;
    }
    if (modes & AN__POOL_MAX) {
        memcpy(out, hidden, h * sizeof(float));
        for (size_t t = 1; t < tokens; t++)
            for (size_t c = 0; c < h; c++)
                out[c] = hidden[t * h + c] > out[c] ? hidden[t * h + c] : out[c];
        out += h;
    }
    if (modes & AN__POOL_MEAN) {
        column_mean(hidden, tokens, h, (double)tokens, out);
        out += h;
    }
    if (modes & AN__POOL_MEAN_SQRT_LEN)
        column_mean(hidden, tokens, h, sqrt((double)tokens), out);
}
