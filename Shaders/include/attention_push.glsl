// The push constants of every attention shader (attention.comp, the tensor-core and coopmat2 variants): the
// operands' addresses and element strides, lengths, the dispatch's batches and query blocks, the softmax scale;
// attention.comp also takes a key range and the state carried between the dispatches of a range-split attention.
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
    uint kBegin;         // attention.comp: the keys of this dispatch, kBegin ..< min(kEnd, kvLen) (multiples of
    uint kEnd;           //   its key block except at kvLen); the other shaders take every key (0, kvLen)
    uint64_t state;      // attention.comp, when the keys are split: fp32 (O, max, sum) per query row (see there)
    uint qbBegin;        // the query blocks of this dispatch: qbBegin ..< min(qbEnd, blocks of Lq) (long attentions
    uint qbEnd;          //   are split so that no dispatch runs long enough to trip a GPU watchdog)
} p;
