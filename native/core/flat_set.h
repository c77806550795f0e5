// A hash set with its keys inline (open addressing, linear probing, deletion
// by backward shift: no tombstones). A lookup is one hash and, at the load
// factor kept here (at most 1/2), about one cache line; a node-based set
// costs a bucket load and a node load, two misses on a large set.
//
// Each key carries a one-byte tag (never 0: 0 marks an empty slot) in the
// byte the slot's padding had anyway, so the sets keep a member's origin
// (sets.h) at no cost in size. A FlatTable with a payload is a map (the
// expiries of timed members); FlatSet has none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nfsieve {

struct NoPayload {};

template <typename K, typename Hash, typename P>
class FlatTable {
 public:
  bool contains(const K& k) const { return tag(k) != 0; }

  // The tag of k, 0 when k is not in the set.
  uint8_t tag(const K& k) const {
    if (size_ == 0) return 0;
    for (size_t i = home(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return 0;
      if (s.key == k) return s.used;
    }
  }

  // False when k was there already (its tag is then left alone).
  bool insert(const K& k, uint8_t tag = 1) {
    if (contains(k)) return false;
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(k, tag, P());
    size_++;
    return true;
  }

  // Give k the tag t (inserting k when absent); t == 0 erases k.
  void set_tag(const K& k, uint8_t t) {
    if (t == 0) {
      erase(k);
      return;
    }
    if (size_ != 0)
      for (size_t i = home(k); slots_[i].used; i = (i + 1) & mask_)
        if (slots_[i].key == k) {
          slots_[i].used = t;
          return;
        }
    insert(k, t);
  }

  // The payload of k; null when k is absent.
  const P* payload(const K& k) const {
    if (size_ == 0) return nullptr;
    for (size_t i = home(k); slots_[i].used; i = (i + 1) & mask_)
      if (slots_[i].key == k) return &slots_[i].payload;
    return nullptr;
  }

  // Insert k or update it, with tag 1 and this payload.
  void put(const K& k, const P& p) {
    if (size_ != 0)
      for (size_t i = home(k); slots_[i].used; i = (i + 1) & mask_)
        if (slots_[i].key == k) {
          slots_[i].payload = p;
          return;
        }
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(k, 1, p);
    size_++;
  }

  // f(key, payload) for every member, in slot order.
  template <typename F>
  void for_each_payload(F f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.key, s.payload);
  }

  // f(key, tag) for every member, in slot order.
  template <typename F>
  void for_each(F f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.key, s.used);
  }

  // False when k was not there.
  bool erase(const K& k) {
    if (size_ == 0) return false;
    size_t i = home(k);
    for (;; i = (i + 1) & mask_) {
      if (!slots_[i].used) return false;
      if (slots_[i].key == k) break;
    }
    // Backward shift: pull later members of the run into the hole when the
    // hole lies on their probe path (between their home and their slot).
    for (size_t j = (i + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
      const size_t h = home(slots_[j].key);
      const bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].used = 0;
    size_--;
    return true;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Whether inserting one more key would rebuild the table (grow()).
  bool full() const { return (size_ + 1) * 2 > slots_.size(); }
  void clear() {
    slots_.clear();
    mask_ = 0;
    size_ = 0;
  }

 private:
  struct Slot {
    K key;
    uint8_t used = 0;  // the tag; 0: empty
    P payload;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;

  size_t home(const K& k) const { return Hash()(k) & mask_; }
  void place(const K& k, uint8_t tag, const P& p) {
    size_t i = home(k);
    while (slots_[i].used) i = (i + 1) & mask_;
    slots_[i].key = k;
    slots_[i].used = tag;
    slots_[i].payload = p;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot());
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.used) place(s.key, s.used, s.payload);
  }
};

template <typename K, typename Hash>
using FlatSet = FlatTable<K, Hash, NoPayload>;

// Fibonacci hashing: the multiply spreads the key over the high bits, which
// the fold brings down to the bits the mask keeps.
struct U32Hash {
  size_t operator()(uint32_t k) const {
    uint64_t h = uint64_t(k) * 0x9e3779b97f4a7c15ull;
    return static_cast<size_t>(h ^ (h >> 32));
  }
};

}  // namespace nfsieve
