# Tokenizer tests: gold vectors (GPT-2, Qwen2/3, Llama 3), file forms, special tokens, the BPE trainer, errors.
r2rec_add_test(test_tokenizer SOURCES core/test_tokenizer.cpp core/test_tokenizer_trainer.cpp
               LIBS r2rec_tokenizer LABELS unit TIMEOUT 300)
