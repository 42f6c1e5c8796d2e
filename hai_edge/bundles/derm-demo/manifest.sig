{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "sdSDSh6v9LKh0R2gTJnGXiNe3QLcYdWcYsUVzgGCPu7DCfBF+Buw3q4mVWGPx2tPCEYDqtmTGZ1VhciO/GiKBQ=="
}
