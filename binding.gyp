{
  "targets": [
    {
      "target_name": "nfsieve",
      "sources": [
        "native/core/decode.cc",
        "native/core/linklayer.cc",
        "native/core/table.cc",
        "native/core/sets.cc",
        "native/core/classify.cc",
        "native/core/lanes.cc",
        "native/core/index.cc",
        "native/core/cuts.cc",
        "native/core/sweep.cc",
        "native/core/linear.cc",
        "native/nfqueue/nfq_socket.cc",
        "native/nfqueue/engine.cc",
        "native/nfqueue/packet_tx.cc",
        "native/classifier_glue.cc",
        "native/queue_glue.cc",
        "native/addon.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17" }
    }
  ]
}
