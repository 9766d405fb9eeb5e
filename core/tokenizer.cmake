# r2rec_tokenizer: byte-level BPE tokenizers (load/encode/decode/save, ChatML) and the small-vocabulary
# BPE trainer. Needs no torch.
add_library(r2rec_tokenizer STATIC
  bpe_byte_level.cpp
  bpe_pretokenizer.cpp
  bpe_trainer.cpp
  tokenizer.cpp
  tokenizer_files.cpp
)
target_link_libraries(r2rec_tokenizer
  PUBLIC r2rec_core
  PRIVATE PkgConfig::PCRE2 PkgConfig::UTF8PROC ZLIB::ZLIB nlohmann_json::nlohmann_json)
r2rec_target_warnings(r2rec_tokenizer)
