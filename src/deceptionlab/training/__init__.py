"""LoRA SFT (E1, E2) and E3's self-training (SFT or KTO)."""
