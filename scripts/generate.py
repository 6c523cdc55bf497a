"""Generate text with a trained GPT-2 run or a pretrained causal LM (greedy or sampled).

    python scripts/generate.py run_dir=outputs/gpt2/runs/<time> prompt="The history of the city"
    python scripts/generate.py model.pretrained=gpt2 prompt="Hello, I am" do_sample=false max_new_tokens=30
"""

from dllabs.generation import generate_main

if __name__ == "__main__":
    generate_main()
