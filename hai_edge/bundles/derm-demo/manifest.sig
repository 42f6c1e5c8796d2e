{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "oKbgbCtPF2vtyiEnhAD5oVaZapAjBTEEQyxTtR7fT2sKLme35dA4X1C2v8u9YjMK+np/K4h2yB3c3Bg2LGBmAQ=="
}
