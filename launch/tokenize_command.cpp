// `r2rec tokenize --tokenizer PATH [--decode]`: a filter for inspecting tokenizers.
//   encode (default): each UTF-8 line of stdin -> one line of space-separated token ids (special tokens in
//                     the text, e.g. <|im_start|>, are recognised);
//   --decode:         each line of space-separated ids -> the decoded text.
// A bad tokenizer file, or a bad id on stdin, throws DataError (one line naming the file or input line).
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tokenizer/tokenizer.h"

namespace r2rec {

int command_tokenize(const std::string& tokenizer_path, bool decode);

int command_tokenize(const std::string& tokenizer_path, bool decode) {
  if (tokenizer_path.empty()) throw DataError("tokenize: --tokenizer PATH is required");
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  std::string line;
  for (size_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (!decode) {
      const std::vector<TokenId> ids = tokenizer.encode(line);
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << '\n';
      continue;
    }
    std::istringstream fields(line);
    std::vector<TokenId> ids;
    std::string field;
    while (fields >> field) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(field, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != field.size() || id < 0 || id >= tokenizer.vocab_size()) {
        throw DataError("<stdin> line " + std::to_string(line_no) + ": \"" + field + "\" is not a token id of " +
                        tokenizer_path + " (0.." + std::to_string(tokenizer.vocab_size() - 1) + ")");
      }
      ids.push_back(static_cast<TokenId>(id));
    }
    try {
      std::cout << tokenizer.decode(ids) << '\n';
    } catch (const DataError& e) {
      throw DataError("<stdin> line " + std::to_string(line_no) + ": " + e.what());
    }
  }
  std::cout.flush();
  return kExitOk;
}

}  // namespace r2rec
