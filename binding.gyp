{
  "includes": ["native/sources.gypi"],
  "variables": {
    "nfsieve_with_testkit%": "<!(node -p \"+(require('fs').existsSync('native/testkit') && !process.env.NFSIEVE_NO_TESTKIT)\")"
  },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden", "-pthread"],
    "ldflags": ["-pthread"],
    "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17" }
  },
  "targets": [
    {
      "target_name": "nfsieve",
      "sources": ["<@(nfsieve_core_sources)", "<@(nfsieve_compile_sources)", "<@(nfsieve_addon_sources)"]
    }
  ],
  "conditions": [
    ["nfsieve_with_testkit==1", {
      "targets": [
        {
          "target_name": "nfsieve_testkit",
          "sources": ["<@(nfsieve_testkit_sources)"]
        }
      ]
    }]
  ]
}
