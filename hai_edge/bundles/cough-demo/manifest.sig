{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "FPjqllSg8BPPsdEWvI/8yDfSKPoD0e7xKeDID/yMtmuFZXfZ4vfljB83X3EEfC+6Y3z0DG004+CMBkiuKNR1BQ=="
}
