"""DeceptionBench-style items: the bank, the scorer and the hub loader."""
