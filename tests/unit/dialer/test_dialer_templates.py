from __future__ import annotations

import pytest

from dialer.domain import contact_variables, render_template


def render(template: str, *, name: str = "", **variables: str) -> str:
    return render_template(template, contact_variables(name=name, variables=variables))


def test_name_is_filled_from_the_contact() -> None:
    assert render("Hi {{NAME}}, this is Ana.", name="Maria") == "Hi Maria, this is Ana."


@pytest.mark.parametrize("name", ["", "   "])
def test_missing_name_becomes_there(name: str) -> None:
    text = render("Hi {{NAME}}, this is Ana.", name=name)
    assert text == "Hi there, this is Ana."
    assert "Hi , this is" not in text


def test_dollar_name_and_lowercase_variable() -> None:
    assert render("Hello ${name}!", name="Bo") == "Hello Bo!"
    assert render("Hello ${name}!") == "Hello there!"


def test_dollar_camel_case_variable() -> None:
    assert render("Order ${orderId} shipped.", orderId="A-17") == "Order A-17 shipped."


def test_upper_case_token_matches_variable_case_insensitively() -> None:
    assert render("Case {{CASE_NUMBER}} is open.", case_number="C-9") == "Case C-9 is open."
    assert render("Case {{ CASE_NUMBER }} is open.", Case_Number="C-9") == "Case C-9 is open."


def test_missing_other_variable_becomes_empty_and_spacing_is_tidied() -> None:
    assert render("Your order {{ORDER_ID}} is ready, {{NAME}}.", name="Al") == (
        "Your order is ready, Al."
    )
    assert render("About case ${caseId}, thanks.") == "About case, thanks."


def test_contact_name_overrides_a_name_variable() -> None:
    variables = contact_variables(name="Zoe", variables={"name": "old"})
    assert render_template("Hi {{NAME}}", variables) == "Hi Zoe"
    fallback = contact_variables(name="", variables={"name": "Vars"})
    assert render_template("Hi {{NAME}}", fallback) == "Hi Vars"


def test_text_without_tokens_is_unchanged() -> None:
    text = "Plain  text , with odd spacing."
    assert render(text) == text
