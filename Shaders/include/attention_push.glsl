// The push constants of every attention shader (attention.comp, the tensor-core and coopmat2 variants): the
// operands' addresses and element strides, lengths, the dispatch's batches and the softmax scale.
layout(push_constant) uniform P {
    uint64_t q;
    uint64_t k;
    uint64_t v;
    uint64_t o;
    uint qsB, qsL, qsH;  // element strides of q (batch, position, head)
    uint ksB, ksL, ksH;
    uint vsB, vsL, vsH;
    uint Lq;
    uint kvLen;          // keys attended (the rest are masked)
    uint H;
    uint batch0;         // first batch of this dispatch
    uint batchCount;
    float qscale;        // softmax scale · log2(e)
} p;
