"""Image + text generation on shadow vision models of both architectures (Mllama's cross-attention,
Llama 4's early fusion), through processors built from the model's vision config: the image reaches
the answer, a batch gives what each prompt gives alone, and Llama 4's tiling and prompt layout are
the ones transformers' Llama 4 processor writes."""

from __future__ import annotations

import pytest
from PIL import Image

from llama_zoo.backends.base import GenerateRequest, GenerateWithImageRequest
from llama_zoo.backends.image_inputs import best_canvas, fit_without_distortion, supported_canvases
from tests.backends.test_classifier_requests import shadow

VISION_MODELS = ["llama-3.2-11b-vision-instruct", "llama-4-scout-17b-16e-instruct"]


def picture(colour, size=(90, 60)):
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 10):  # some structure, so tiles differ
        image.putpixel((x, x % size[1]), (255 - colour[0], 0, 255))
    return image


def request(image, question="What colour is it?", new=6):
    return GenerateWithImageRequest(image, f"<|image|>{question}", GenerateRequest((), max_new_tokens=new))


@pytest.mark.parametrize("model", VISION_MODELS)
def test_the_image_reaches_the_answer(model, catalog):
    runner = shadow(catalog, model)
    red, blue = runner.generate_with_image([request(picture((200, 20, 20))), request(picture((20, 20, 200)))])
    assert red.tokens[0] and blue.tokens[0]
    assert red.tokens[0] != blue.tokens[0]  # the same text, a different image: a different answer
    again = runner.generate_with_image([request(picture((200, 20, 20)))])[0]
    assert again.tokens == red.tokens  # greedy: the same image, the same answer


@pytest.mark.parametrize("model", VISION_MODELS)
def test_a_batch_gives_what_each_prompt_gives_alone(model, catalog):
    runner = shadow(catalog, model)
    requests = [request(picture((200, 20, 20), (90, 60)), "Colour?"),
                request(picture((20, 200, 20), (40, 160)), "What shape is drawn in the middle of this picture?"),
                request(picture((20, 20, 200), (300, 300)), "Count the dots.")]
    batched = runner.generate_with_image(requests)
    alone = [runner.generate_with_image([r])[0] for r in requests]
    assert [b.tokens for b in batched] == [a.tokens for a in alone]


def test_llama4_prompt_has_one_patch_token_per_image_feature(catalog):
    runner = shadow(catalog, "llama-4-scout-17b-16e-instruct")
    processor = runner._processor()
    wide = picture((10, 10, 10), (300, 60))  # wider than one tile: several tiles and a global one
    inputs = processor(images=[wide], text=["<|image|>hi"], return_tensors="pt")
    tiles = inputs["pixel_values"].shape[0]
    assert tiles > 2
    vision = runner.model.config.vision_config
    per_tile = (vision.image_size // vision.patch_size) ** 2 // 4  # pixel shuffle at ratio 0.5
    patch = runner.tokenizer.convert_tokens_to_ids("<|patch|>")
    assert int((inputs["input_ids"] == patch).sum()) == tiles * per_tile
    ids = inputs["input_ids"][0].tolist()
    names = runner.tokenizer.convert_ids_to_tokens(ids)
    assert names[1] == "<|image_start|>" and "<|image_end|>" in names
    assert names.count("<|image|>") == 1  # before the global tile
    rows = names.count("<|tile_y_separator|>")  # one after each row of tiles
    columns = names.count("<|tile_x_separator|>") // rows + 1  # between a row's tiles
    assert rows * columns + 1 == tiles > 2  # the tiles, then the global one
    assert float(inputs["pixel_values"].min()) >= -1.0 and float(inputs["pixel_values"].max()) <= 1.0


def test_mllama_processor_uses_the_shadow_tile_size(catalog):
    runner = shadow(catalog, "llama-3.2-11b-vision-instruct")
    inputs = runner._processor()(images=[[picture((1, 2, 3), (200, 50))]], text=["<|image|>hi"], return_tensors="pt")
    size = runner.model.config.vision_config.image_size
    assert inputs["pixel_values"].shape[-2:] == (size, size)
    assert inputs["pixel_values"].shape[2] == runner.model.config.vision_config.max_num_tiles
    assert int((inputs["input_ids"] == runner.model.config.image_token_index).sum()) == 1


def test_llama4_canvases_match_transformers_documented_examples():
    # the examples in transformers' Llama 4 image processor docstrings (its resize sizes: as its
    # code computes them, which floors where the docstring rounds: 133 and 337, not 134 and 338)
    assert set(supported_canvases(4, 224)) == {(224, 896), (448, 448), (224, 224), (896, 224), (224, 672), (672, 224),
                                                (224, 448), (448, 224)}
    options = [(224, 672), (672, 224), (224, 448), (448, 224), (224, 224)]
    assert best_canvas((200, 300), options) == (224, 448)
    assert fit_without_distortion((200, 300), (450, 200)) == (133, 200)
    assert fit_without_distortion((800, 600), (450, 1300)) == (450, 337)


def test_a_tokenizer_without_image_tokens_is_one_clear_error(catalog, shared):
    from transformers import AutoTokenizer

    from llama_zoo.backends.base import BackendError
    from llama_zoo.backends.image_inputs import config_processor

    root = shared / "tokenizers" / "llama3_1"
    runner = shadow(catalog, "llama-4-scout-17b-16e-instruct")
    with pytest.raises(BackendError, match="the tokenizer has no <|image|>"):
        config_processor(runner.model.config, AutoTokenizer.from_pretrained(root))
