{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "ybNav84fg1u0bEkO5f/2hrPZAgmZUWKB/ZFl4DtaGiJ8cWGxUV2LEeI/be4Ax2ELkXFya//pwMuENBEdSWRTAg=="
}
