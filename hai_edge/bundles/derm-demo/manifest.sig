{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "PV2B4RqNt2ITA+KAKZUACFcmJ9KpCX+wcWO/c+DVUNSxzn71Bq0pIcui6lwcSNHNM8Vx++HwZm3ac5xe3pTyDA=="
}
