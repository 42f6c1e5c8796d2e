{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "Vh9PFn2Lay0OEVJSE04Vc3YoDW8z81mjGn4uiMD2P3JQAF9FgM0PJdnkt70RSpYuTPeEESEdPTCIfbLcPBpjAg=="
}
