// GPT-2's byte <-> unicode alphabet used by every byte-level BPE vocabulary (GPT-2, Qwen2/3, Llama 3).
//
// Each of the 256 byte values is mapped to one printable code point: the printable Latin-1 bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the other 68 bytes to U+0100.. in byte order (so a space
// is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A). Token strings in vocab.json / tokenizer.json / merges.txt are
// written in this alphabet; r2rec keeps tokens as raw bytes internally and converts at the file boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace r2rec {

// The code point byte `b` is written as.
char32_t byte_to_unicode(uint8_t b);

// Raw bytes -> the UTF-8 string of their alphabet code points ("Hello world" -> "HelloĠworld").
std::string bytes_to_token_string(std::string_view bytes);

// The inverse: a token string in the alphabet -> raw bytes. nullopt when `token` is not valid UTF-8 or
// holds a code point outside the alphabet (such a string is not a byte-level token).
std::optional<std::string> token_string_to_bytes(std::string_view token);

// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(char32_t cp, std::string& out);

}  // namespace r2rec
