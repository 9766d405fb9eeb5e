// `r2rec explain --run-dir DIR --user U [--split test] [--model M] [--json]`: one user's example of a split as
// the model sees it and answers it. The prompt (history, chains, candidates), the model's greedy completion with
// the answer constrained to the candidates (the procedure of `r2rec eval`, trainers/eval/lm_eval.h generate_answers;
// eval decodes padded batches, so a completion can differ from eval's in float rounding), its answer
// and the true item, and which chains the reasoning cites and whether each citation and the votes line are
// grounded in the prompt (trainers/task/citations.h). U is the dataset's own user id (the N of <user_N>). M defaults
// to the newest of <run.dir>/rl/model, sft/model, pretrain/model; the config to <run.dir>/config.yaml.
// Rank 0 does the work; it reads and writes nothing in the run directory.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "launch/commands.h"
#include "trainers/eval/lm_eval.h"
#include "trainers/lm/answering.h"
#include "trainers/lm/model_folder.h"
#include "trainers/task/citations.h"

namespace r2rec {
namespace fs = std::filesystem;
namespace {

std::string titled(const Catalog& catalog, int32_t item) {
  const std::string& title = catalog.item_titles[static_cast<size_t>(item)];
  return item_token(catalog, item) + (title.empty() ? "" : " " + title);
}

std::string indent(const std::string& text, const std::string& pad) {
  std::string out = pad;
  for (char ch : text) {
    out += ch;
    if (ch == '\n') out += pad;
  }
  return out;
}

}  // namespace

int command_explain(CommandContext& ctx, const ExplainOptions& o) {
  if (ctx.process->rank != 0) return kExitOk;
  const Config& c = ctx.config;
  if (o.split != "train" && o.split != "valid" && o.split != "test") {
    throw ConfigError("--split: '" + o.split + "' is not a split (train, valid or test)");
  }
  std::string model_dir = o.model_dir;
  if (model_dir.empty()) {
    for (const char* stage : {"rl", "sft", "pretrain"}) {
      if (fs::exists(ctx.layout.stage_model(stage) + "/config.json")) {
        model_dir = ctx.layout.stage_model(stage);
        break;
      }
    }
    if (model_dir.empty()) {
      throw DataError(ctx.layout.root() +
                      ": no trained model (rl/model, sft/model, pretrain/model); train one or "
                      "pass --model DIR");
    }
  } else if (!fs::exists(model_dir + "/config.json")) {
    throw DataError(model_dir + "/config.json: not found (--model names a checkpoint folder)");
  }
  ShardReader reader(reader_options(ctx, split_from_name(o.split), /*rank_share=*/false, /*for_eval=*/false));
  const Catalog& catalog = reader.catalog();
  if (std::find(catalog.user_tokens.begin(), catalog.user_tokens.end(), o.user) == catalog.user_tokens.end()) {
    throw DataError("--user: '" + o.user + "' is not a user of " + c.data.name + " after filtering (ids run like '" +
                    (catalog.user_tokens.empty() ? std::string() : catalog.user_tokens.front()) + "')");
  }
  Example e;
  ChainBuffer chains;
  bool found = false;
  while (!found && reader.next(&e, &chains)) {
    found = catalog.user_tokens[static_cast<size_t>(e.user)] == o.user;
    if (!found) chains.clear();
  }
  if (!found) throw DataError("--user: user " + o.user + " has no example in the " + o.split + " split");
  LoadedModel loaded = load_model_folder(model_dir, c.tokenizer.path);
  const Tokenizer& tok = *loaded.tokenizer;
  const TaskFormat format = task_format(c);
  const int64_t count = chains.size();
  const std::string prompt = render_prompt(e, chains, 0, count, catalog, format, PromptForm::kReason);
  const std::vector<std::vector<std::vector<int64_t>>> answers = {candidate_answer_ids(tok, e, catalog, format)};
  const std::vector<GeneratedAnswer> out =
      generate_answers(*loaded.model, tok, {e},
                       {token_ids(tok, render_chat_prompt(e, chains, 0, count, catalog, format, PromptForm::kReason))},
                       answers, catalog, c.eval.max_new_tokens);
  const GeneratedAnswer& a = out.front();
  const ReasoningCheck check = check_reasoning(a.text, e, chains, 0, count, catalog, format);
  const ChainEvidence evidence = chain_evidence(e, chains, 0, count, 0);
  const bool correct = a.choice == e.target_index;

  if (o.json) {
    nlohmann::json j;
    j["user"] = o.user;
    j["split"] = o.split;
    j["example_id"] = e.id;
    j["model"] = model_dir;
    j["prompt"] = prompt;
    j["history"] = nlohmann::json::array();
    for (int32_t item : e.history)
      j["history"].push_back({{"item", catalog.item_tokens[static_cast<size_t>(item)]},
                              {"title", catalog.item_titles[static_cast<size_t>(item)]}});
    j["chains"] = nlohmann::json::array();
    for (int64_t k = 0; k < count; ++k) {
      nlohmann::json nodes = nlohmann::json::array();
      for (int64_t n = chains.offsets[k]; n < chains.offsets[k + 1]; ++n) {
        const bool item = static_cast<NodeType>(chains.types[n]) == NodeType::kItem;
        const auto id = static_cast<size_t>(chains.nodes[n]);
        nodes.push_back(
            {{"type", item ? "item" : "user"}, {"id", item ? catalog.item_tokens[id] : catalog.user_tokens[id]}});
      }
      j["chains"].push_back(nodes);
    }
    j["candidates"] = nlohmann::json::array();
    for (size_t i = 0; i < e.candidates.size(); ++i) {
      const auto item = static_cast<size_t>(e.candidates[i]);
      j["candidates"].push_back({{"item", catalog.item_tokens[item]},
                                 {"title", catalog.item_titles[item]},
                                 {"votes", evidence.votes[i]},
                                 {"target", static_cast<int32_t>(i) == e.target_index}});
    }
    j["target_index"] = e.target_index;
    j["completion"] = a.text;
    j["finish"] = finish_reason_name(a.finish);
    j["tokens"] = a.tokens;
    j["forced"] = a.forced;
    j["valid"] = a.valid;
    j["answer_index"] = a.choice;
    j["correct"] = correct;
    j["citations"] = nlohmann::json::array();
    for (const Citation& ci : check.citations) {
      j["citations"].push_back({{"chain", ci.chain >= 0 ? ci.chain + 1 : ci.number},
                                {"number_written", ci.number > 0},
                                {"path", ci.path},
                                {"in_prompt", ci.chain >= 0},
                                {"text", ci.line},
                                {"mentions", ci.mentions},
                                {"steps", ci.steps},
                                {"grounded_steps", ci.grounded_steps},
                                {"off_chain", ci.off_chain},
                                {"false_candidates", ci.false_candidates},
                                {"grounded", ci.grounded},
                                {"why", ci.why}});
    }
    nlohmann::json votes = {{"written", check.has_votes}, {"true", check.votes_true}};
    votes["entries"] = nlohmann::json::array();
    for (const VoteClaim& v : check.votes)
      votes["entries"].push_back(
          {{"entry", v.entry}, {"candidate_index", v.candidate}, {"claimed", v.claimed}, {"actual", v.actual}});
    j["votes"] = votes;
    j["named_index"] = check.named;
    j["favoured"] = check.favoured;
    j["consistent"] = check.consistent(a.choice);
    // A completion may end inside a multi-byte character: replace invalid UTF-8 rather than fail.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }

  std::cout << "explain: user " << o.user << ", " << o.split << " example " << e.id << " (item " << e.position + 1
            << " of the user's sequence), model " << model_dir << "\n\n";
  std::cout << "Prompt (the user turn the model reads):\n" << indent(prompt, "  ") << "\n\n";
  std::cout << "Candidates (votes: prompt chains reaching each; * the true item):\n";
  for (size_t i = 0; i < e.candidates.size(); ++i) {
    std::printf("  %s[%zu] %s  votes %d\n", static_cast<int32_t>(i) == e.target_index ? "*" : " ", i + 1,
                titled(catalog, e.candidates[i]).c_str(), evidence.votes[i]);
  }
  std::cout << "\nThe model's reasoning (greedy, " << a.tokens << " tokens, finished: " << finish_reason_name(a.finish)
            << (a.forced ? "; <answer> appended" : "") << "):\n"
            << indent(a.text, "  ") << "\n\n";
  const std::string target = "[" + std::to_string(e.target_index + 1) + "] " + titled(catalog, e.target);
  if (a.choice >= 0) {
    std::cout << "Answer: [" << a.choice + 1 << "] " << titled(catalog, e.candidates[static_cast<size_t>(a.choice)])
              << (correct ? "  (correct)" : "  (wrong; the true item is " + target + ")") << "\n";
  } else {
    std::cout << "Answer: malformed (names no candidate); the true item is " << target << "\n";
  }
  int64_t grounded = 0;
  for (const Citation& ci : check.citations) grounded += ci.grounded;
  std::cout << "Citations: " << check.citations.size() << " chain(s) cited, " << grounded
            << " grounded in the prompt\n";
  for (const Citation& ci : check.citations) {
    const std::string which = !ci.path        ? "Chain " + (ci.number > 0 ? std::to_string(ci.number) : "?")
                              : ci.chain >= 0 ? "Path (chain " + std::to_string(ci.chain + 1) + ")"
                                              : "Path";
    const size_t text = ci.line.find_first_not_of(' ');
    std::cout << "  " << which << " " << (text == std::string::npos ? "" : ci.line.substr(text)) << ": "
              << (ci.grounded ? "grounded (" + std::to_string(ci.steps) + " steps, each a hop of the chain)"
                              : "not grounded: " + ci.why)
              << "\n";
  }
  if (check.has_votes) {
    std::cout << "Votes line: " << (check.votes_true ? "true to the prompt" : "not true to the prompt") << " (";
    for (size_t k = 0; k < check.votes.size(); ++k) {
      const VoteClaim& v = check.votes[k];
      std::cout << (k ? ", " : "") << v.entry
                << (v.candidate < 0 ? " names no candidate" : ": " + std::to_string(v.actual) + " in the prompt");
    }
    std::cout << (check.votes.empty() ? "none" : "") << ")\n";
  } else {
    std::cout << "Votes line: none written\n";
  }
  if (check.count_claim) {  // "Candidate X. No chain reaches it." or the grouped layout's "Candidate X 3"
    std::cout << "Count claim about the candidate it names: "
              << (check.count_true ? "true to the prompt" : "not true to the prompt") << "\n";
  }
  std::string favoured;
  for (int32_t k : check.favoured) favoured += (favoured.empty() ? "[" : ", [") + std::to_string(k + 1) + "]";
  std::cout << "Stated evidence favours: "
            << (favoured.empty() ? "nothing (no evidence, or it contradicts itself)" : favoured) << "; the answer "
            << (check.consistent(a.choice) ? "follows it" : "does not follow it") << "\n";
  return kExitOk;
}

}  // namespace r2rec
