"""The simulator's OpenAI-compatible /v1 API, driven by the real OpenAI Python SDK (and raw SSE)."""

import json

import httpx
import openai
import pytest


@pytest.fixture
def client(sim_instance):
    return openai.OpenAI(base_url=f"{sim_instance.url}/v1", api_key="ollama", max_retries=0)


def test_models_lists_every_model_of_the_instance(client):
    ids = [model.id for model in client.models.list()]
    assert ids == ["llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"]


def test_chat_completion_answers_like_the_native_chat(client, sim_instance):
    answer = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    native = httpx.post(f"{sim_instance.url}/api/chat", json={
        "model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}).json()
    assert answer.choices[0].message.content == native["message"]["content"]
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == native["eval_count"]


def test_chat_completion_streams_sse_chunks_that_add_up_to_the_answer(client):
    whole = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    chunks = list(client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert len(chunks) > 2
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_stream_is_server_sent_events_ending_in_done(sim_instance):
    with httpx.stream("POST", f"{sim_instance.url}/v1/chat/completions", json={
            "model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_max_tokens_limits_the_answer(client):
    answer = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=2)
    assert len(answer.choices[0].message.content.split()) == 2
    assert answer.choices[0].finish_reason == "length"


def test_text_completions(client):
    answer = client.completions.create(model="llama3.2", prompt="why")
    assert answer.choices[0].text and answer.object == "text_completion"


def test_embeddings_as_floats_and_as_the_sdk_default_base64(client, sim_instance):
    native = httpx.post(f"{sim_instance.url}/api/embed", json={"model": "nomic-embed-text", "input": ["a", "b"]}).json()
    default = client.embeddings.create(model="nomic-embed-text", input=["a", "b"])  # the SDK asks for base64
    floats = client.embeddings.create(model="nomic-embed-text", input=["a", "b"], encoding_format="float")
    for result in (default, floats):
        assert [item.index for item in result.data] == [0, 1]
        for got, want in zip(result.data, native["embeddings"], strict=True):
            assert got.embedding == pytest.approx(want, rel=1e-6)


def test_an_unknown_model_is_an_openai_shaped_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="mistral:7b", messages=[{"role": "user", "content": "hi"}])
    assert "not found" in caught.value.body["message"]


def test_faults_apply_to_v1_too(client, sim_instance):
    sim_instance.set_fault("busy503")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
