// Uses the installed Session API: prefill a context, compress it with KVzip, answer a question.
// Usage: consumer MODEL CONTEXT_FILE
#include <cstdio>
#include <fstream>
#include <sstream>

#include "model/model.h"
#include "model/session.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  std::ifstream f(argv[2]);
  std::stringstream text;
  text << f.rdbuf();
  auto dev = kvz::open_device("cpu");
  auto model = kvz::Model::load(*dev, argv[1]);
  kvz::Session s(*model);
  s.prefill(text.str());
  s.score();
  const kvz::PruneResult p = s.prune(0.3);
  kvz::GenerateOptions o;
  o.max_new_tokens = 8;
  const kvz::GenerateResult r = s.generate("Who was lost?", o);
  std::printf("kept %.3f tokens %zu answer: %s\n", p.kept_fraction, r.tokens.size(),
              r.text.c_str());
  return r.tokens.empty() ? 1 : 0;
}
