{
  "variables": {
    "nfsieve_core_sources": [
      "native/core/decode.cc",
      "native/core/linklayer.cc",
      "native/core/table.cc",
      "native/core/sets.cc",
      "native/core/classify.cc",
      "native/core/lanes.cc",
      "native/core/index.cc",
      "native/core/cuts.cc",
      "native/core/splits.cc",
      "native/core/covered.cc",
      "native/core/compact.cc",
      "native/core/limit.cc"
    ],
    "nfsieve_compile_sources": [
      "native/compile/sweep.cc"
    ],
    "nfsieve_addon_sources": [
      "native/nfqueue/nfq_socket.cc",
      "native/nfqueue/engine.cc",
      "native/nfqueue/packet_tx.cc",
      "native/classifier_glue.cc",
      "native/queue_glue.cc",
      "native/addon.cc"
    ],
    "nfsieve_testkit_sources": [
      "native/testkit/linear.cc",
      "native/testkit/testkit.cc"
    ]
  }
}
