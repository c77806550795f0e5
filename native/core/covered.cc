// Covered rules: the rules the lookup structures may leave out.
//
// WHAT THE STRUCTURES ANSWER. The cut trees and split trees (cuts.h) answer
// one question per packet: the lowest rule whose interval conditions all
// hold (the first candidate). Everything after it (residual checks, marks,
// non-terminal actions, forward skips) is classify.cc's, which resumes the
// scan from the table's own vectors. So a rule may be left out of the trees
// when it can never be the FIRST candidate, whatever its action and whatever
// the action of the rules before it.
//
// WHEN A RULE IS NEVER FIRST. Rule j is never first when some earlier rule i
// holds wherever j does: any header that sets j's bit sets i's, and i < j.
// With boxes (cuts.h) that is box(j) inside box(i), provided i's box is
// exact: one interval in every box field, and every field outside the box
// unconditioned (a rule flagged for re-checking has a hull, which may hold
// where the rule does not, so it covers nothing). j may be flagged: its
// conditions hold inside its hull, hence inside box(i).
//
// WHY IT MATTERS. A rule list grown by hand, by import or by synthesis gathers
// rules that wider rules above them already decide. The 100,000-rule sets
// synthesised from ClassBench seeds (each field of a rule drawn from another
// seed rule) are the extreme: fw2_100k draws a rule wild in every field at
// position 15, and only 16 of its rules can ever be first; fw1, fw3, fw5,
// ipc1, ipc2 and acl2 keep 78-334, acl3 2,935, acl4 6,226 (the 10k seeds
// themselves: 0-81 covered). Trees over the rules that can be first are as
// small as the set's real content, which rte_acl's trie gets from merging
// rule tries.
//
// HOW IT IS FOUND. Rules are visited in order, each tested against a list of
// covering candidates: the kCoverers largest exact boxes among the rules kept
// so far (size: the sum over box fields of log2 of the side's width), tested
// largest first, so that a wide rule early in the list removes most rules
// after it at the first test. Only single covering rules are found: a rule
// covered by the union of several (two halves of its box) stays in, and so
// does one covered only by a small rule that fell off the list. Both only
// cost lookups time; neither changes an answer. Cost: at most
// rules x kCoverers box tests (100k rules: under 7 M, tens of milliseconds,
// most of them ending at the first field).
#include <algorithm>
#include <cmath>

#include "cuts.h"

namespace nfsieve {
namespace {

constexpr size_t kCoverers = 64;

struct Coverer {
  double size;
  const RuleBox* box;
};

bool inside(const RuleBox& in, const RuleBox& out, int dims) {
  for (int d = 0; d < dims; d++)
    if (in.lo[d] < out.lo[d] || in.hi[d] > out.hi[d]) return false;
  return true;
}

double box_size(const RuleBox& b, int dims) {
  double s = 0;
  for (int d = 0; d < dims; d++) s += std::log2(double(b.hi[d]) - b.lo[d] + 1);
  return s;
}

// Adds an exact box to the candidates (kept largest first, at most kCoverers).
void offer(std::vector<Coverer>* list, const RuleBox* box, int dims) {
  const Coverer c{box_size(*box, dims), box};
  if (list->size() == kCoverers && c.size <= list->back().size) return;
  auto at = std::upper_bound(list->begin(), list->end(), c, [](const Coverer& a, const Coverer& b) { return a.size > b.size; });
  list->insert(at, c);
  if (list->size() > kCoverers) list->pop_back();
}

}  // namespace

uint32_t drop_covered(const std::vector<CutsRule>& rules, int dims, std::vector<uint8_t>* alive) {
  std::vector<Coverer> list;
  list.reserve(kCoverers + 1);
  uint32_t dropped = 0;
  for (size_t r = 0; r < rules.size(); r++) {
    if (!(*alive)[r]) continue;
    const RuleBox& box = rules[r].box;
    bool covered = false;
    for (const Coverer& c : list)
      if ((covered = inside(box, *c.box, dims))) break;
    if (covered) {
      (*alive)[r] = 0;
      dropped++;
    } else if (!(rules[r].id & FamilyCuts::kVerify)) {
      offer(&list, &box, dims);
    }
  }
  return dropped;
}

}  // namespace nfsieve
