// Items as tokens, end to end on a small synthetic catalog: the learnt tokenizer holds one plain added token per
// item and user; a checkpoint with them exports in the Hugging Face layout (added_tokens in tokenizer.json,
// embed_tokens resized) and loads back; generation with the answer constraint answers a candidate's item token;
// a pretrained model's embedding grows for the new tokens, each item row starting from its title's sub-words.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/files.h"
#include "core/model/generation.h"
#include "core/tokenizer/bpe_trainer.h"
#include "tests/test_support.h"
#include "trainers/lm/answering.h"
#include "trainers/lm/model_folder.h"
#include "trainers/task/corpus.h"
#include "trainers/task/task.h"

namespace r2rec {
namespace {
using testing::TempDir;

Catalog catalog_of(int items, int users) {
  Catalog c;
  for (int i = 0; i < items; ++i) {
    c.item_tokens.push_back(std::to_string(100 + i));
    c.item_titles.push_back("Film number " + std::to_string(i));
    c.item_train_count.push_back(1);
  }
  for (int u = 0; u < users; ++u) {
    c.user_tokens.push_back(std::to_string(u + 1));
    for (int k = 0; k < 4; ++k) c.user_train_items.push_back((u + k) % items);
    c.user_train_offsets.push_back(static_cast<int64_t>(c.user_train_items.size()));
  }
  return c;
}

Tokenizer task_tokenizer(const Catalog& catalog) {
  BpeTrainerOptions o;
  o.vocab_size = 320;
  o.plain_tokens = entity_tokens(catalog, TaskFormat{});
  std::vector<std::string> texts = {"History (oldest first): Chains (U is this user): Candidates: Think over"};
  for (const auto& t : catalog.item_titles) texts.push_back(t);
  return Tokenizer(train_bpe(texts, o));
}

TEST(ItemTokens, EveryItemAndUserIsOnePlainAddedToken) {
  const Catalog catalog = catalog_of(12, 5);
  const Tokenizer tok = task_tokenizer(catalog);
  // The entity tokens are the last 17 ids, after the BPE vocabulary and the special tokens.
  EXPECT_EQ(*tok.token_id(item_token(catalog, 0)), tok.vocab_size() - 17);
  EXPECT_EQ(*tok.token_id(user_token(catalog, 4)), tok.vocab_size() - 1);
  for (int i = 0; i < 12; ++i) {
    const auto ids = tok.encode("x" + item_token(catalog, i) + "y");
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_FALSE(tok.is_special(ids[1]));
    EXPECT_EQ(tok.decode(ids), "x" + item_token(catalog, i) + "y");
  }
  EXPECT_EQ(tok.encode(user_token(catalog, 4)).size(), 1u);
  // Adjacent item tokens stay separate tokens (the token form's history and candidate lists).
  EXPECT_EQ(tok.encode(item_token(catalog, 1) + item_token(catalog, 11)).size(), 2u);
}

TEST(ItemTokens, CheckpointExportsInHfLayoutAndAnswersACandidateToken) {
  const Catalog catalog = catalog_of(12, 5);
  const Tokenizer tok = task_tokenizer(catalog);
  Config c = load_config("", {"model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=1",
                              "model.intermediate_size=48"});
  Transformer model = build_model(c, tok.vocab_size());
  TempDir dir;
  const std::string ck = dir.file("model");
  save_model_folder(*model, tok, ck);
  const auto tj = nlohmann::json::parse(read_file(ck + "/tokenizer.json"));
  int items = 0;
  for (const auto& t : tj["added_tokens"]) {
    if (t["content"].get<std::string>().rfind("<item_", 0) == 0) {
      ++items;
      EXPECT_FALSE(t["special"].get<bool>());
    }
  }
  EXPECT_EQ(items, 12);
  const auto cj = nlohmann::json::parse(read_file(ck + "/config.json"));
  EXPECT_EQ(cj["vocab_size"].get<int64_t>(), (tok.vocab_size() + 63) / 64 * 64);
  LoadedModel back = load_model_folder(ck);
  EXPECT_EQ(back.model->embed_tokens->weight.size(0), cj["vocab_size"].get<int64_t>());
  EXPECT_EQ(back.tokenizer->token_id(item_token(catalog, 7)), tok.token_id(item_token(catalog, 7)));
  // Constrained generation: after "<answer>" only a candidate's item token (then "</answer>") can follow.
  Example e;
  e.candidates = {3, 8, 1, 10};
  e.target_index = 1;
  const TaskFormat f;
  const auto answers = candidate_answer_ids(*back.tokenizer, e, catalog, f);
  for (const auto& a : answers) ASSERT_EQ(a.size(), 2u);  // the item token, then </answer>
  const auto prompt = back.tokenizer->encode("<|im_start|>assistant\n<think>\n</think><answer>");
  for (uint64_t seed = 0; seed < 8; ++seed) {
    GenerationRequest r{{prompt.begin(), prompt.end()}, seed, answer_constraint(answers, /*immediate=*/true)};
    const auto g =
        generate(*back.model, {r}, answer_sampling(*back.tokenizer, 8, 1.0, 1.0), answer_token_text(*back.tokenizer));
    ASSERT_EQ(g[0].finish, FinishReason::kAnswer);
    const int32_t choice = parse_answer("<answer>" + g[0].text, e, catalog);
    ASSERT_GE(choice, 0) << g[0].text;
    EXPECT_EQ(g[0].tokens.front(), answers[static_cast<size_t>(choice)].front());
  }
}

TEST(ItemTokens, PretrainedModelGrowsRowsFromTitleSubwords) {
  const Catalog catalog = catalog_of(6, 3);
  BpeTrainerOptions o;
  o.vocab_size = 300;
  std::vector<std::string> texts(catalog.item_titles.begin(), catalog.item_titles.end());
  const Tokenizer base(train_bpe(texts, o));  // a "pretrained" tokenizer without entity tokens
  Config c = load_config("", {"model.hidden_size=16", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=1",
                              "model.intermediate_size=32"});
  Transformer model = build_model(c, base.vocab_size());
  const torch::Tensor before = model->embed_tokens->weight.detach().clone();
  TokenizerSpec spec = base.spec();
  int64_t next = base.vocab_size();
  for (const auto& e : entity_tokens(catalog, TaskFormat{}))
    spec.added_tokens.push_back({static_cast<TokenId>(next++), e, false});
  const Tokenizer grown(spec);
  grow_vocabulary(*model, grown, catalog);
  const torch::Tensor after = model->embed_tokens->weight.detach();
  EXPECT_EQ(after.size(0), (grown.vocab_size() + 63) / 64 * 64);
  EXPECT_EQ(model->config.vocab_size, after.size(0));
  for (int64_t r = 0; r < base.vocab_size(); ++r)
    EXPECT_TRUE(torch::equal(after[r], before[r]));  // old tokens keep theirs
  for (int i = 0; i < catalog.num_items(); ++i) {
    const auto parts = base.encode(catalog.item_titles[i]);
    std::vector<int64_t> ids(parts.begin(), parts.end());
    const torch::Tensor mean = before.index_select(0, torch::tensor(ids)).mean(0);
    EXPECT_TRUE(torch::allclose(after[*grown.token_id(item_token(catalog, i))], mean, 1e-6, 1e-6)) << i;
  }
  // The grown model runs on the new ids.
  const torch::Tensor ids = torch::tensor({{static_cast<int64_t>(*grown.token_id(item_token(catalog, 2)))}});
  EXPECT_EQ(model->forward(ids).size(2), after.size(0));
}

TEST(Corpus, DocumentsUseTheTrainSplitOnlyAndWalkTrainEdges) {
  const Catalog catalog = catalog_of(12, 5);
  CorpusOptions o;
  o.walks_per_user = 3;
  o.title_share = 1.0;
  const std::vector<std::string> docs = corpus_documents(catalog, TaskFormat{}, o, 0);
  int sequences = 0, walks = 0, titles = 0;
  for (const auto& d : docs) {
    if (d.rfind("History (oldest first): ", 0) == 0) {
      ++sequences;
    } else if (d.rfind("Chains (U is this user):\n", 0) == 0) {
      ++walks;
    } else {
      ++titles;
      EXPECT_NE(d.find(" is Film number "), std::string::npos) << d;
    }
  }
  EXPECT_EQ(sequences, 5);
  EXPECT_GT(walks, 0);
  EXPECT_EQ(titles, 2);  // 12 lines, eight a document
  // Each user's sequence document is exactly their train items, in order.
  for (int u = 0; u < 5; ++u) {
    std::string expected = "History (oldest first): ";
    for (int64_t k = catalog.user_train_offsets[u]; k < catalog.user_train_offsets[u + 1]; ++k)
      expected += item_token(catalog, catalog.user_train_items[k]);
    EXPECT_NE(std::find(docs.begin(), docs.end(), expected), docs.end()) << expected;
  }
  // Same seed and pass: the same documents; another pass draws other walks.
  EXPECT_EQ(corpus_documents(catalog, TaskFormat{}, o, 0), docs);
  EXPECT_NE(corpus_documents(catalog, TaskFormat{}, o, 1), docs);
  const auto rows = pack_rows({{1, 2, 3}, {4, 5}}, 0, 4);
  ASSERT_EQ(rows.size(), 1u);  // 1 2 3 0 | 4 5 0 (dropped)
  EXPECT_EQ(rows[0], (std::vector<int64_t>{1, 2, 3, 0}));
}

// A reading document: walks, then "Candidate X." (a walk's end) and the first cited_chains walks holding X read
// back from X's first place on them to U, each "(chain k)." with its number in the document (the traces'
// evidence form, written out independently).
TEST(Corpus, ReadingDocumentsReadTheirOwnWalksBack) {
  const Catalog catalog = catalog_of(12, 5);
  CorpusOptions o;
  o.walks_per_user = 0;
  o.title_share = 0;
  o.reading_per_user = 3;
  const TaskFormat f;
  int reading = 0;
  for (const auto& d : corpus_documents(catalog, f, o, 0)) {
    if (d.find("<think>") == std::string::npos) continue;
    ++reading;
    std::istringstream in(d);
    std::string line;
    std::getline(in, line);
    ASSERT_EQ(line, "Chains (U is this user):");
    std::vector<std::vector<std::string>> chains;  // each walk's nodes, U first
    while (std::getline(in, line) && line != "<think>") {
      const std::string prefix = std::to_string(chains.size() + 1) + ". ";
      ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
      std::vector<std::string> nodes;
      for (size_t b = prefix.size(), arrow;; b = arrow + 4) {
        arrow = line.find(" -> ", b);
        nodes.push_back(line.substr(b, arrow == std::string::npos ? std::string::npos : arrow - b));
        if (arrow == std::string::npos) break;
      }
      ASSERT_EQ(nodes.size(), 4u) << line;
      EXPECT_EQ(nodes[0], "U");
      chains.push_back(nodes);
    }
    ASSERT_LE(chains.size(), 8u);
    std::getline(in, line);
    ASSERT_EQ(line.rfind("Candidate ", 0), 0u) << d;
    const std::string x = line.substr(10, line.size() - 11);
    std::string want;
    int cited = 0;
    for (size_t k = 0; k < chains.size() && cited < f.cited_chains; ++k) {
      if (chains[k][1] == x) {  // read back from X's first place on the walk
        want += x + " <- U (chain " + std::to_string(k + 1) + ").\n";
      } else if (chains[k][3] == x) {
        want += x + " <- " + chains[k][2] + " <- " + chains[k][1] + " <- U (chain " + std::to_string(k + 1) + ").\n";
      } else {
        continue;
      }
      ++cited;
    }
    ASSERT_GT(cited, 0) << d;  // X is a walk's end
    std::string rest, got;
    while (std::getline(in, rest) && rest != "</think>") got += rest + "\n";
    EXPECT_EQ(got, want) << d;
  }
  EXPECT_GT(reading, 10);
  EXPECT_LE(reading, 15);
}

// A copy document is a whole task conversation: the prompt's candidates are distinct and apart from the history,
// the trace names a candidate some prompt chain ends at, and every citation it writes is the end of a prompt line
// ending at that candidate (compact layout: "k. XvaU" cited as "XvaU."), so looking up is all it takes.
TEST(Corpus, CopyDocumentsCiteOnlyTheirOwnPromptLines) {
  const Catalog catalog = catalog_of(40, 9);
  CorpusOptions o;
  o.walks_per_user = 0;
  o.title_share = 0;
  o.copy_per_user = 2;
  o.history_len = 4;
  o.num_candidates = 6;
  o.chains_per_example = 5;
  TaskFormat f;
  f.layout = ChainLayout::kCompact;
  const auto docs = corpus_documents(catalog, f, o, 0);
  int copies = 0;
  const auto split_tokens = [](const std::string& s) {  // "<a><b>" -> {"<a>", "<b>"}
    std::vector<std::string> out;
    for (size_t b = s.find('<'); b != std::string::npos; b = s.find('<', b + 1))
      out.push_back(s.substr(b, s.find('>', b) - b + 1));
    return out;
  };
  for (const auto& d : docs) {
    const size_t turn = d.find("<|im_start|>assistant\n");
    if (turn == std::string::npos) continue;  // a user's history document
    ++copies;
    std::istringstream prompt(d.substr(0, turn));
    std::vector<std::string> history, candidates, lines;
    for (std::string line; std::getline(prompt, line);) {
      if (line.rfind("History (oldest first): ", 0) == 0) history = split_tokens(line.substr(24));
      if (line.rfind("Candidate <item_", 0) == 0) candidates.push_back(line.substr(10));  // compact: a line each
      const size_t dot = line.find(". <item_");
      if (dot != std::string::npos && dot <= 2) lines.push_back(line.substr(dot + 2));
    }
    ASSERT_EQ(history.size(), 4u) << d;
    ASSERT_EQ(candidates.size(), 6u) << d;
    ASSERT_EQ(lines.size(), 5u) << d;
    std::vector<std::string> all = history;
    all.insert(all.end(), candidates.begin(), candidates.end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(std::unique(all.begin(), all.end()), all.end()) << d;
    std::istringstream trace(d.substr(turn));
    std::string line;
    std::getline(trace, line);  // <|im_start|>assistant
    std::getline(trace, line);
    ASSERT_EQ(line, "<think>");
    std::getline(trace, line);
    ASSERT_EQ(line.rfind("Candidate <item_", 0), 0u) << d;
    const std::string x = line.substr(10, line.size() - 11);
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), x), candidates.end()) << d;
    int cited = 0;
    while (std::getline(trace, line) && line != "</think><answer>" + x + "</answer>") {
      ASSERT_EQ(line.back(), '.') << d;
      const std::string path = line.substr(0, line.size() - 1);
      EXPECT_EQ(path.rfind(x, 0), 0u) << d;
      EXPECT_NE(std::find(lines.begin(), lines.end(), path), lines.end()) << "cites no prompt line: " << d;
      ++cited;
    }
    EXPECT_GE(cited, 1) << d;
    EXPECT_LE(cited, f.cited_chains) << d;
  }
  EXPECT_EQ(copies, 18);                                // 9 users x 2
  EXPECT_EQ(corpus_documents(catalog, f, o, 0), docs);  // seeded by (seed, pass)
}

}  // namespace
}  // namespace r2rec
