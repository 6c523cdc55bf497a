"""Sentiment analysis of a finished IMDB run: test accuracy, confusion matrix figure, most confident mistakes.

python train.py experiment=lstm_imdb
python scripts/sentiment_report.py outputs/lstm_imdb/runs/<time>               # writes into the run folder
python scripts/sentiment_report.py outputs/lstm_imdb/runs/<time> --split val --top-k 20 --out reports/
python scripts/sentiment_report.py outputs/lstm_imdb/runs/<time> data.data_dir=/elsewhere   # data moved
"""

import sys

from dllabs.analysis.sentiment import main

if __name__ == "__main__":
    sys.exit(main())
