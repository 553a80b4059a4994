"""The paper's building blocks: SEANet codec halves, the scale quantizer and the AAR transformer."""
