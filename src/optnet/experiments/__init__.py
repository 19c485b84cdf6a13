"""The paper's experiments: Sudoku, total-variation denoising, classification."""
