{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "szFleDybnQ2TvFGGKF3xLFjJ2x16UYDuVsJbI+PHBlOikjeLd9CtFtvIOfXqBUo9zfBEnXLlnumpoI/SJHk5Bw=="
}
