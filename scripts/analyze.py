"""Layer analysis of any model config: shapes, parameters and MACs per layer, weight/gradient histograms.

python scripts/analyze.py                          # SimpleNN-3 (lab 2) on a 1x3x32x32 input
python scripts/analyze.py model=resnet20
python scripts/analyze.py model=simplenn input_shape=[1,3,32,32] histograms=false
"""

from dllabs.analysis.cli import analyze_main

if __name__ == "__main__":
    analyze_main()
