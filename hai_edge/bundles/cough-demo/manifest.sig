{
  "format": "hai-edge-signature/1",
  "algorithm": "ed25519",
  "key_id": "c987aacdcd4ac008",
  "public_key": "vnjD81eWRMkyKtQOi1z2sQf/VihDpz8Vi4gjxg4G2m4=",
  "signature": "takI91/U+qUeZtoaqt0w2zM0EQAnL7O7kZyzQnzw13UtOyQwC8QUAClx1+Ng8uBt5+ce6dzI3XKMcGxAWpyKCA=="
}
