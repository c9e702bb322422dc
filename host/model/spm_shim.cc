// spm_shim: see spm_shim.h. Exceptions never cross into C.
#include "model/spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct lm_spm {
    sentencepiece::SentencePieceProcessor sp;
};

extern "C" lm_spm *lm_spm_load(const char *path, const char *data, size_t len, char *err, size_t err_cap) {
    try {
        lm_spm *s = new lm_spm;
        auto status = s->sp.LoadFromSerializedProto(absl::string_view(data, len));
        if (!status.ok()) {
            std::snprintf(err, err_cap, "%s: cannot load SentencePiece model: %s", path, status.ToString().c_str());
            delete s;
            return nullptr;
        }
        return s;
    } catch (...) {
        std::snprintf(err, err_cap, "%s: cannot load SentencePiece model", path);
        return nullptr;
    }
}

extern "C" void lm_spm_free(lm_spm *spm) { delete spm; }

extern "C" int lm_spm_encode(const lm_spm *spm, const char *text, size_t len,
                             void (*emit)(void *, const char *, size_t), void *ctx) {
    try {
        std::vector<std::string> pieces;
        if (!spm->sp.Encode(std::string(text, len), &pieces).ok()) return -1;
        for (const auto &p : pieces) emit(ctx, p.data(), p.size());
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" char *lm_spm_decode_pieces(const lm_spm *spm, const char *const *pieces, int n) {
    try {
        std::vector<std::string> in(pieces, pieces + n);
        std::string out;
        if (!spm->sp.Decode(in, &out).ok()) return nullptr;
        char *s = static_cast<char *>(std::malloc(out.size() + 1));
        if (!s) return nullptr;
        std::memcpy(s, out.data(), out.size());
        s[out.size()] = '\0';
        return s;
    } catch (...) {
        return nullptr;
    }
}
