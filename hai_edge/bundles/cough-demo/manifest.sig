{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "FDg/r2Rx4NhAxd97cwMHFIO8by4qm75Zko2Bmy9eLdjrZppPLGQYdUfVDaSetlr6guQX9u3ogEPsBl7uyrOJBg=="
}
