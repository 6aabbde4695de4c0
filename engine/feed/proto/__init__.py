"""Code generated from `proto/MarketDataFeedV3.proto` (do not edit; run `make proto`)."""
